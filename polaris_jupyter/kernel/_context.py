"""What a kernel offers its notebook chat panel as context (issue 13): the context chips.

Three items, in the ``ContextItem`` wire form the server reads (``polaris_jupyter/chat/context.py``):

- the notebook the kernel belongs to (``kind: notebook``), from IPython's ``__session__`` (or
  ``JPY_SESSION_NAME``: the Jupyter server names a kernel's session path there), made relative to
  the workspace; no notebook known (plain IPython, a console, outside the workspace): no item;
- the last cell that raised (``kind: cell`` with its source and its traceback as an nbformat
  ``error`` output, both inline, so the model sees exactly what was run and shown; without a
  notebook or a cell id a ``selection`` of the source and the traceback text), offered only while
  it is the latest error: a newer error replaces it, a successful run of the same cell withdraws it;
- this kernel's variables (``kind: variables`` with the kernel id from its connection file), where
  the server can reach the kernel (``offer_variables``: remote mode).

The last error is recorded by IPython's ``post_run_cell`` event (registered once per shell); one
that happened before the first panel was shown is found from ``sys.last_value``, its cell from the
traceback's cell file and IPython's input history. Sources and tracebacks are capped, so an offer
stays small however big a cell is.
"""

from __future__ import annotations

import contextlib
import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["MAX_SOURCE_CHARS", "MAX_TRACEBACK_CHARS", "KernelContext", "kernel_context", "notebook_path"]

#: Characters of the failing cell's source offered inline (the middle is cut beyond that).
MAX_SOURCE_CHARS = 20_000
#: Characters of its traceback (the oldest frames go first: the last lines say what happened).
MAX_TRACEBACK_CHARS = 20_000
_CUT = "\n… (cut) …\n"


def _clip_middle(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    half = (limit - len(_CUT)) // 2
    return text[:half] + _CUT + text[-half:]


def _clip_traceback(lines: list[str], limit: int) -> list[str]:
    """The last lines of a traceback within ``limit`` characters (the first kept as the header)."""
    lines = [str(line) for line in lines]
    if sum(len(line) for line in lines) <= limit:
        return lines
    head, kept, size = lines[0][: limit // 4], [], 0
    for line in reversed(lines[1:]):
        line = _clip_middle(line, limit // 2)
        if size + len(line) + len(head) > limit:
            break
        kept.append(line)
        size += len(line)
    return [head, "… (earlier frames cut) …", *reversed(kept)]


def notebook_path(session: str | None, root: str, cwd: str) -> str | None:
    """The workspace-relative path of the kernel's notebook, or None.

    ``session`` is what the Jupyter server put in ``JPY_SESSION_NAME``: an absolute path (when
    the session has a name) or its URL path (relative to the server's root). ``root`` is the
    workspace; ``cwd`` the kernel's folder (where a relative name is looked up when it is not
    under ``root``). Paths outside the workspace and non-notebooks give None.
    """
    if not session or not session.endswith(".ipynb"):
        return None
    root = os.path.realpath(root)
    if os.path.isabs(session):
        candidate = session
    else:  # the server's URL path (root-relative), else a name in the kernel's folder
        found = [c for c in (os.path.join(root, session), os.path.join(cwd, session)) if os.path.exists(c)]
        candidate = found[0] if found else os.path.join(root, session)
    absolute = os.path.realpath(candidate)
    if os.path.commonpath([absolute, root]) == root and absolute != root:
        return os.path.relpath(absolute, root).replace(os.sep, "/")
    return None


@dataclass(frozen=True)
class LastError:
    """The latest cell that raised: what ran and the traceback it showed."""

    source: str
    cell_id: str | None
    output: dict[str, Any]


def _error_output(shell: Any, exc: BaseException, shown: Any = None) -> dict[str, Any]:
    """``exc`` as an nbformat error output; ``shown`` is the traceback IPython displayed, if kept."""
    lines: list[str] | None = list(shown) if isinstance(shown, list) and shown else None
    if lines is None:
        try:
            lines = list(shell.InteractiveTB.structured_traceback(type(exc), exc, exc.__traceback__))
        except Exception:
            lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
    return {"output_type": "error", "ename": type(exc).__name__, "evalue": _clip_middle(str(exc), 2000),
            "traceback": _clip_traceback(lines, MAX_TRACEBACK_CHARS)}


def _cell_of_traceback(shell: Any, exc: BaseException) -> str | None:
    """The source of the input cell a traceback went through (IPython's cell file → its history)."""
    numbers = getattr(getattr(shell, "compile", None), "_filename_map", None) or {}
    history = getattr(getattr(shell, "history_manager", None), "input_hist_raw", None) or []
    tb = exc.__traceback__
    while tb is not None:
        number = numbers.get(tb.tb_frame.f_code.co_filename)
        if isinstance(number, int) and 0 <= number < len(history):
            return str(history[number])
        tb = tb.tb_next
    return None


class KernelContext:
    """The context this kernel offers; panels :meth:`watch` it to re-offer after each cell."""

    def __init__(self, shell: Any, *, root: str, kernel_id: str | None, offer_variables: bool) -> None:
        self.shell = shell
        self.root = root
        self.kernel_id = kernel_id
        self.offer_variables = offer_variables and bool(kernel_id) and not str(kernel_id).startswith("pid-")
        self.last_error: LastError | None = None
        self._watchers: list[Callable[[], None]] = []
        self._seed_last_error()
        shell.events.register("post_run_cell", self.post_run_cell)

    # -- what is offered -------------------------------------------------------------------------
    def notebook(self) -> str | None:
        session = (getattr(self.shell, "user_ns", None) or {}).get("__session__") or os.environ.get("JPY_SESSION_NAME")
        return notebook_path(session if isinstance(session, str) else None, self.root, os.getcwd())

    def items(self) -> list[dict[str, Any]]:
        """The offered items, in chip order (notebook, last error, variables)."""
        path = self.notebook()
        items: list[dict[str, Any]] = []
        if path:
            items.append({"kind": "notebook", "path": path, "label": path.rsplit("/", 1)[-1]})
        error = self.last_error
        if error is not None:
            label = f"Last error ({error.output['ename']})"[:200]
            source = _clip_middle(error.source, MAX_SOURCE_CHARS)
            if path and error.cell_id:
                items.append({"kind": "cell", "path": path, "cellId": error.cell_id[:256], "label": label,
                              "source": source, "outputs": [error.output]})
            else:  # no notebook cell to name: the source and the traceback as one text
                from polaris_jupyter.tools.notebook_format import strip_ansi

                shown = strip_ansi("\n".join(error.output["traceback"]))
                items.append({"kind": "selection", "label": label, "language": "python",
                              "source": f"{source}\n\n# raised:\n{shown}"})
        if self.offer_variables and self.kernel_id:
            items.append({"kind": "variables", "kernelId": self.kernel_id[:256], "label": "Variables"})
        return items

    # -- following the kernel --------------------------------------------------------------------
    def watch(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` after each cell ran; returns the function that stops it."""
        self._watchers.append(callback)

        def stop() -> None:
            with contextlib.suppress(ValueError):
                self._watchers.remove(callback)

        return stop

    def post_run_cell(self, result: Any) -> None:
        """IPython's event: record or withdraw the last error, then tell the panels."""
        info = getattr(result, "info", None)
        source = str(getattr(info, "raw_cell", "") or "")
        cell_id = getattr(info, "cell_id", None)
        cell_id = cell_id if isinstance(cell_id, str) and cell_id else None
        exc = getattr(result, "error_in_exec", None) or getattr(result, "error_before_exec", None)
        if isinstance(exc, BaseException):
            shown = getattr(self.shell, "_last_traceback", None)  # ipykernel keeps what it displayed
            self.last_error = LastError(source, cell_id, _error_output(self.shell, exc, shown))
        elif self.last_error is not None and self._same_cell(self.last_error, source, cell_id):
            self.last_error = None  # the cell that raised ran fine now
        for callback in list(self._watchers):
            try:
                callback()
            except Exception:  # a closed panel must not break the user's cells
                pass

    @staticmethod
    def _same_cell(error: LastError, source: str, cell_id: str | None) -> bool:
        return error.cell_id == cell_id if error.cell_id and cell_id else error.source == source

    def _seed_last_error(self) -> None:
        """An error shown before the first panel: ``sys.last_value`` and the cell it went through."""
        exc = getattr(sys, "last_value", None)
        if not isinstance(exc, BaseException):
            return
        source = _cell_of_traceback(self.shell, exc)
        if source is not None:
            self.last_error = LastError(source, None, _error_output(self.shell, exc))

    def close(self) -> None:
        with contextlib.suppress(ValueError):
            self.shell.events.unregister("post_run_cell", self.post_run_cell)
        self._watchers.clear()


_BY_SHELL: dict[int, KernelContext] = {}


def _kernel_id() -> str | None:
    """This kernel's id, only inside a running ipykernel (asking elsewhere would create one's app)."""
    try:
        from ipykernel.kernelapp import IPKernelApp
    except ImportError:
        return None
    if not IPKernelApp.initialized():
        return None
    from polaris_jupyter.kernel._bridge import kernel_id

    return kernel_id()


def kernel_context(*, root: str, offer_variables: bool) -> KernelContext | None:
    """The context of the running IPython shell (one per shell, made on first use); None outside IPython."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    if shell is None or not hasattr(shell, "events"):
        return None
    kernel_id = _kernel_id()
    found = _BY_SHELL.get(id(shell))
    if found is None or found.shell is not shell:
        found = _BY_SHELL[id(shell)] = KernelContext(shell, root=root, kernel_id=kernel_id, offer_variables=offer_variables)
    else:  # a reconnect may change the mode or the workspace
        found.root, found.kernel_id = root, kernel_id
        found.offer_variables = offer_variables and bool(kernel_id) and not str(kernel_id).startswith("pid-")
    return found
