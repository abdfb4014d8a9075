"""How every command-line entry point ends on an error.

A user's mistake (a missing run directory, a config typo, an unknown preset, a damaged checkpoint, a file
no reader takes, a bad flag) prints one line, `error: ...`, naming the field or file and what to do, and
exits with status 2. The library says these things with ValueError and OSError (FileNotFoundError,
FileExistsError, ...), with absl's UsageError in the entry points, and, while the flags are parsed, with
absl's and ml_collections' flag errors. Anything else is a bug and keeps its traceback. `--verbosity=1`
(absl's `-v 1`) or BIOMED_TRACEBACK=1 shows the traceback for a user's mistake too.

    from biomed_jax import cli
    ...
    if __name__ == "__main__":
        flags.mark_flags_as_required(["config"])
        cli.run(main)
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from typing import Callable, NoReturn, Sequence

from absl import app, flags
from ml_collections import config_flags

USAGE_STATUS = 2
USER_ERRORS = (ValueError, OSError, app.UsageError)


def run(main: Callable[[list[str]], object]) -> None:
    """absl's app.run(main) with the errors above turned into one line and exit status 2."""
    app.run(_guarded(main), flags_parser=_parse_flags)


def _guarded(main):
    def guarded(argv):
        try:
            return main(argv)
        except USER_ERRORS as err:
            if _traceback_wanted():
                raise
            fail(message(err))

    return guarded


def _traceback_wanted() -> bool:
    verbosity = flags.FLAGS["verbosity"].value if "verbosity" in flags.FLAGS else 0
    return os.environ.get("BIOMED_TRACEBACK", "") not in ("", "0") or verbosity >= 1


def fail(text: str) -> NoReturn:
    """Prints `error: text` on one line to stderr and exits with status 2."""
    print(f"error: {text}", file=sys.stderr, flush=True)
    sys.exit(USAGE_STATUS)


def message(err: BaseException) -> str:
    """The error's own words on one line (OSError's '[Errno 2]' prefix dropped when it names a file)."""
    if isinstance(err, OSError) and err.filename is not None and err.strerror:
        text = f"{err.filename}: {err.strerror}"
    else:
        text = str(err) or type(err).__name__
    return " ".join(part.strip() for part in text.strip().splitlines() if part.strip())


def _parse_flags(argv: Sequence[str]) -> list[str]:
    """absl's flag parsing with its errors in one line (it prints 'FATAL Flags parsing error' and a config
    file's traceback)."""
    with _config_errors(argv):
        return flags.FLAGS(argv)


def define_config_file(name: str, default: str | None, help_string: str, **kwargs):
    """config_flags.DEFINE_config_file whose errors are one line too: a flag with a default config file is
    parsed, overrides and all, when it is defined, before run() is reached."""
    with _config_errors(sys.argv):
        return config_flags.DEFINE_config_file(name, default, help_string, **kwargs)


@contextlib.contextmanager
def _config_errors(argv: Sequence[str]):
    try:
        yield
    except flags.Error as err:
        if _traceback_wanted():
            raise
        fail(_flag_error(str(err)))
    except (KeyError, AttributeError) as err:   # ml_collections: an override of a field that does not exist
        if _traceback_wanted():
            raise
        fail(_missing_field(err, argv))


def _flag_error(text: str) -> str:
    """A flag error's last line: for a config file, the exception its get_config raised."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    first = lines[0] if lines else text
    flag = re.match(r"flag (--[^=\s]+)", first)
    if len(lines) > 1 and "Traceback" in text:
        last = re.sub(r"^\w+(\.\w+)*(Error|Exception): ", "", lines[-1])
        return f"{flag.group(1)}: {last}" if flag else last
    return re.sub(r"^flag (--[^=\s]+)=[^:]*: ", r"\1: ", first) if flag else first


def _missing_field(err: Exception, argv: Sequence[str]) -> str:
    """'--config.trian.steps: the config has no field 'trian'; did you mean "train"?' from ml_collections'
    KeyError, naming the flag that asked for it."""
    text = err
    while isinstance(text, BaseException):   # AttributeError(KeyError("'name'\nDid you mean ..."))
        text = text.args[0] if text.args else str(text)
    text = str(text)
    name, _, hint = text.partition("\n")
    name = name.strip("'\"")
    given = [arg.split("=", 1)[0] for arg in argv[1:] if arg.startswith("--")]
    flag = next((arg for arg in given if re.search(rf"\.{re.escape(name)}(\.|$)", arg)), None)
    where = f"{flag}: " if flag else ""
    hint = f"; {hint[0].lower()}{hint[1:]}" if hint else ""
    return f"{where}the config has no field {name!r}{hint}"
