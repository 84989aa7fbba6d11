"""Rendering a template we did not write (a workspace's `templates/cover.j2`, a
`--template FILE`): a cloned workspace brings its template along, so it is
untrusted input.

- jinja2's `ImmutableSandboxedEnvironment`: no attribute that leads out of the
  template (`__class__`, `__globals__`, `__init__`, ...), no method that changes
  a value, `range` capped;
- the rendering runs in a forked child with a CPU-time and an address-space
  limit and a wall-clock deadline (the parent kills it), and its output is capped:
  a template that loops forever, allocates without end or writes gigabytes is
  refused with one line naming the limit.

The template is compiled in the child too: jinja2 folds constant expressions
while compiling (`{{ 'x' * 10**10 }}` would be computed there), so compiling an
untrusted template is as dangerous as rendering it.  The child writes the text or
the error to a pipe as JSON and exits with `os._exit` (nothing of the parent's
runs twice).
"""

from __future__ import annotations

import json
import os
import resource
import select
import signal
import time
from typing import Any

import jinja2
import jinja2.sandbox

from ..errors import UserError

MAX_TEMPLATE_BYTES = 256 * 1024          # the template file
MAX_OUTPUT_BYTES = 1024 * 1024           # what it renders
TIME_LIMIT = 10.0                        # seconds, CPU and wall clock
MEMORY_LIMIT = 512 * 1024 * 1024         # bytes of address space over the parent's


def read_template(path: os.PathLike[str] | str, where: str) -> str:
    """A template file's text: UTF-8, at most MAX_TEMPLATE_BYTES; UserError otherwise."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_TEMPLATE_BYTES + 1)
    except OSError as e:
        raise UserError(f"cover template {where}: cannot read it: {e.strerror or e}") from None
    if len(data) > MAX_TEMPLATE_BYTES:
        raise UserError(f"cover template {where}: over the limit of {MAX_TEMPLATE_BYTES // 1024} KiB for a template")
    if b"\0" in data:
        raise UserError(f"cover template {where}: a binary file, not a jinja2 template")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"cover template {where}: not UTF-8 text ({e.reason} at byte {e.start})") from None


def _vm_size() -> int:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):  # pragma: no cover - Linux has it
        pass
    return 0


def _render_child(text: str, variables: dict[str, Any], max_output: int) -> dict[str, str]:
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                                                       autoescape=False, optimized=False)
    out: list[str] = []
    size = 0
    try:
        template = env.from_string(text)
        for chunk in template.generate(**variables):
            size += len(chunk.encode("utf-8", "surrogateescape"))
            if size > max_output:
                return {"error": f"it renders more than the limit of {max_output // 1024} KiB"}
            out.append(chunk)
    except jinja2.TemplateError as e:
        return {"error": f"{type(e).__name__}: {e}"}
    except MemoryError:
        return {"error": f"it needs more than the limit of {MEMORY_LIMIT // (1024 * 1024)} MiB of memory"}
    except RecursionError:
        return {"error": "it recurses too deeply"}
    except Exception as e:  # anything the template's own operations raise (1/0, a bad format)
        return {"error": f"{type(e).__name__}: {e}"}
    return {"text": "".join(out)}


def render_untrusted(text: str, variables: dict[str, Any], where: str, *, time_limit: float = TIME_LIMIT,
                     max_output: int = MAX_OUTPUT_BYTES) -> str:
    """Render `text` (a jinja2 template from the workspace or the user) with
    `variables`, sandboxed and limited.  UserError (one line) on any failure."""
    limit_as = _vm_size() + MEMORY_LIMIT
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: render, report, exit without running anything of the parent's
        code = 0
        try:
            os.close(rfd)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            # Soft limits, under whatever hard limits the process already has.
            for which, want in ((resource.RLIMIT_CPU, int(time_limit) + 1),
                                (resource.RLIMIT_AS, limit_as if limit_as > MEMORY_LIMIT else -1)):
                soft, hard = resource.getrlimit(which)
                if want > 0:
                    resource.setrlimit(which, (want if hard == resource.RLIM_INFINITY else min(want, hard), hard))
            result = _render_child(text, variables, max_output)
            payload = json.dumps(result).encode("utf-8", "surrogateescape")
            view = memoryview(payload)
            while view:
                n = os.write(wfd, view)
                view = view[n:]
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(wfd)
    chunks: list[bytes] = []
    deadline = time.monotonic() + time_limit
    reaped = False
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise UserError(f"cover template {where}: it took longer than the limit of {time_limit:g} s")
            ready, _, _ = select.select([rfd], [], [], left)
            if not ready:
                continue
            data = os.read(rfd, 1 << 16)
            if not data:
                break
            chunks.append(data)
            if sum(map(len, chunks)) > 4 * max_output + 4096:  # JSON of the capped output, with escapes
                raise UserError(f"cover template {where}: it renders more than the limit of "
                                f"{max_output // 1024} KiB")
        _, status = os.waitpid(pid, 0)
        reaped = True
    finally:
        os.close(rfd)
        if not reaped:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:  # pragma: no cover
                pass
            os.waitpid(pid, 0)
    if not chunks:
        sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
        why = ("it took longer than the limit of {:g} s of CPU".format(time_limit) if sig == signal.SIGXCPU
               else f"it needs more than the limit of {MEMORY_LIMIT // (1024 * 1024)} MiB of memory"
               if sig in (signal.SIGKILL, signal.SIGSEGV) or os.WIFEXITED(status)
               else f"the renderer died ({signal.Signals(sig).name if sig else 'no result'})")
        raise UserError(f"cover template {where}: {why}")
    try:
        result = json.loads(b"".join(chunks).decode("utf-8", "surrogateescape"))
    except ValueError:  # pragma: no cover - the child writes JSON or nothing
        raise UserError(f"cover template {where}: the renderer gave no result") from None
    if "error" in result:
        raise UserError(f"cover template {where}: {result['error']}")
    return str(result["text"])
