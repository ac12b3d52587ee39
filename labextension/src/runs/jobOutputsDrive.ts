/**
 * A read-only JupyterLab drive over the outputs of run-notebook runs, so "Open executed
 * notebook" / "Open HTML" open them in JupyterLab's own notebook and HTML viewers.
 *
 * The outputs live in the hidden folder `.polaris/jobs/<run id>/`, which Jupyter's contents
 * API refuses to serve; this drive reads them through `GET runs/{runId}/outputs/{format}`
 * instead. Paths are `PolarisJobs:<run id>/<file name>` (the extension says the format).
 * Anything that would write (save, rename, delete, new file) is refused with a message that
 * says so.
 */

import { Contents, ServerConnection } from '@jupyterlab/services';
import { ISignal, Signal } from '@lumino/signaling';

import type { PolarisClient } from '../api';

export const JOB_OUTPUTS_DRIVE = 'PolarisJobs';

const READ_ONLY = 'Job outputs are read-only: download the file, or copy it into the workspace to change it.';

interface RunOutputFile {
  runId: string;
  format: 'ipynb' | 'html';
  path: string;
  name: string;
  mimetype: string;
  content: unknown;
  size: number;
  lastModified: string;
}

/** The drive path of a run's output file (what `docmanager:open` gets). */
export function jobOutputPath(runId: string, workspacePath: string): string {
  return `${JOB_OUTPUTS_DRIVE}:${runId}/${workspacePath.split('/').pop() ?? ''}`;
}

export class JobOutputsDrive implements Contents.IDrive {
  readonly name = JOB_OUTPUTS_DRIVE;
  readonly serverSettings: ServerConnection.ISettings;
  private _fileChanged = new Signal<Contents.IDrive, Contents.IChangedArgs>(this);
  private _disposed = false;

  constructor(private readonly client: PolarisClient) {
    this.serverSettings = client.settings;
  }

  get fileChanged(): ISignal<Contents.IDrive, Contents.IChangedArgs> {
    return this._fileChanged;
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  dispose(): void {
    if (!this._disposed) {
      this._disposed = true;
      Signal.clearData(this);
    }
  }

  async get(localPath: string, options?: Contents.IFetchOptions): Promise<Contents.IModel> {
    const [runId, name, ...rest] = localPath.split('/').filter(Boolean);
    if (!runId || !name || rest.length) {
      return directory(localPath);
    }
    const format = name.toLowerCase().endsWith('.ipynb') ? 'ipynb' : name.toLowerCase().endsWith('.html') ? 'html' : null;
    if (!format) {
      throw new Error(`${name} is not a job output (an executed .ipynb or its .html)`);
    }
    const file = await this.client.request<RunOutputFile>('GET', `runs/${encodeURIComponent(runId)}/outputs/${format}`);
    const notebook = format === 'ipynb';
    return {
      name: file.name,
      path: localPath,
      type: notebook ? 'notebook' : 'file',
      format: notebook ? 'json' : 'text',
      mimetype: file.mimetype,
      content: options?.content === false ? null : file.content,
      writable: false,
      created: file.lastModified,
      last_modified: file.lastModified,
      size: file.size
    };
  }

  /** The REST URL of the output (the HTML viewer uses it as the document's base URL). */
  async getDownloadUrl(localPath: string): Promise<string> {
    const [runId, name] = localPath.split('/').filter(Boolean);
    const format = (name ?? '').toLowerCase().endsWith('.html') ? 'html' : 'ipynb';
    return this.client.url(`runs/${encodeURIComponent(runId ?? '')}/outputs/${format}`);
  }
  async newUntitled(): Promise<Contents.IModel> {
    throw new Error(READ_ONLY);
  }
  async delete(): Promise<void> {
    throw new Error(READ_ONLY);
  }
  async rename(): Promise<Contents.IModel> {
    throw new Error(READ_ONLY);
  }
  async save(): Promise<Contents.IModel> {
    throw new Error(READ_ONLY);
  }
  async copy(): Promise<Contents.IModel> {
    throw new Error(READ_ONLY);
  }
  async createCheckpoint(): Promise<Contents.ICheckpointModel> {
    throw new Error(READ_ONLY);
  }
  async listCheckpoints(): Promise<Contents.ICheckpointModel[]> {
    return [];
  }
  async restoreCheckpoint(): Promise<void> {
    throw new Error(READ_ONLY);
  }
  async deleteCheckpoint(): Promise<void> {
    throw new Error(READ_ONLY);
  }
}

function directory(localPath: string): Contents.IModel {
  const now = new Date().toISOString();
  return {
    name: localPath.split('/').filter(Boolean).pop() ?? '',
    path: localPath,
    type: 'directory',
    format: 'json',
    mimetype: '',
    content: [],
    writable: false,
    created: now,
    last_modified: now
  };
}
