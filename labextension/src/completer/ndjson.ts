/**
 * Reads a streamed NDJSON answer (one JSON object a line) as the bytes arrive,
 * so each piece of a suggestion is shown as soon as the server flushed it.
 */

/** The lines of `body`, parsed, in order; ends with the body. Abort its fetch to stop it. */
export async function* ndjsonLines<T>(body: ReadableStream<Uint8Array>): AsyncGenerator<T> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      buffer += done ? decoder.decode() : decoder.decode(value, { stream: true });
      let newline = buffer.indexOf('\n');
      while (newline >= 0) {
        const line = buffer.slice(0, newline).trim();
        buffer = buffer.slice(newline + 1);
        if (line) {
          yield JSON.parse(line) as T;
        }
        newline = buffer.indexOf('\n');
      }
      if (done) {
        if (buffer.trim()) {
          yield JSON.parse(buffer) as T;
        }
        return;
      }
    }
  } finally {
    reader.releaseLock();
  }
}
