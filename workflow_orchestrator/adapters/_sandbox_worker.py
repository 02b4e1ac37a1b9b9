"""The sandbox worker: a standalone script run as ``python -s -P _sandbox_worker.py CPU OUT MEM``.

It imports nothing of workflow_orchestrator (only the standard library and jq), so it starts
fast and works from an installed wheel; ``-P`` keeps this folder off ``sys.path``, so a module
of this package never shadows a standard one. Protocol on stdin/stdout, frames of a 4-byte
big-endian length and a body: request body = 4-byte program length, program text, input JSON
text; reply body = one status byte (``o`` outputs as JSON texts joined by newlines, ``e`` jq
error message, ``s`` output too large, ``m`` out of memory) and its payload.

Budget: before each evaluation the process arms ``ITIMER_PROF`` with the CPU budget and does not
handle ``SIGPROF``, so the kernel terminates the process when the budget is spent, even inside
jq's C code. ``ITIMER_REAL`` (``3 * cpu + 1`` seconds, ``SIGALRM``) backs it up in wall-clock
time for a starved worker; it is measured by the kernel, not by the caller's (possibly mocked)
Trio clock. ``RLIMIT_AS`` caps the address space; jq aborts (SIGABRT) when an allocation fails.
The parent sees the process end and reports the expression error.
"""

import json
import resource
import signal
import struct
import sys

import jq  # type: ignore[import-not-found,unused-ignore]

_CACHE_SIZE = 1000


def _address_space() -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _read_exactly(stream: object, size: int) -> bytes:
    data = stream.read(size)  # type: ignore[attr-defined]
    if len(data) < size:
        raise EOFError
    return data  # type: ignore[no-any-return]


def _reply(stream: object, status: bytes, payload: bytes) -> None:
    stream.write(struct.pack(">I", len(payload) + 1) + status + payload)  # type: ignore[attr-defined]
    stream.flush()  # type: ignore[attr-defined]


def main() -> None:
    """Serve evaluations until stdin closes."""
    cpu_seconds = float(sys.argv[1])
    wall_seconds = cpu_seconds * 3 + 1
    max_output_bytes = int(sys.argv[2])
    max_memory_bytes = int(sys.argv[3])
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGPROF, signal.SIG_DFL)
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    if max_memory_bytes > 0 and _address_space() > 0:
        limit = _address_space() + max_memory_bytes
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    stdin = sys.stdin.buffer
    stdout = sys.stdout.buffer
    cache: dict[str, object] = {}
    while True:
        try:
            (size,) = struct.unpack(">I", _read_exactly(stdin, 4))
            body = _read_exactly(stdin, size)
        except EOFError:
            return
        (program_size,) = struct.unpack(">I", body[:4])
        program = body[4 : 4 + program_size].decode()
        text = body[4 + program_size :].decode()
        try:
            compiled = cache.get(program)
            if compiled is None:
                if len(cache) >= _CACHE_SIZE:
                    cache.clear()
                compiled = cache[program] = jq.compile(program)
            signal.setitimer(signal.ITIMER_PROF, cpu_seconds)
            signal.setitimer(signal.ITIMER_REAL, wall_seconds)
            try:
                outputs = compiled.input_text(text).all()  # type: ignore[attr-defined]
                result = "\n".join(json.dumps(output) for output in outputs)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.setitimer(signal.ITIMER_PROF, 0)
        except ValueError as error:
            _reply(stdout, b"e", str(error).encode())
            continue
        except RecursionError:
            _reply(
                stdout, b"e", b"the result nests too deep (about 1,000 levels); flatten the data"
            )
            continue
        except MemoryError:
            _reply(stdout, b"m", b"")
            continue
        encoded = result.encode()
        if len(encoded) > max_output_bytes:
            _reply(stdout, b"s", str(len(encoded)).encode())
            continue
        _reply(stdout, b"o", encoded)


if __name__ == "__main__":
    main()
