"""A restricted reader for pickles that hold only plain data and numpy uint8 arrays.

The official CIFAR-10 python batches are pickles.  Unpickling runs code chosen
by the file, so they are never unpickled: :class:`RestrictedPickle` walks the
opcode stream and builds the object symbolically.  It imports and calls
nothing; numpy arrays come back as :class:`Stub` records for the caller to
check and decode.
"""
from __future__ import annotations

import io
import pickletools
from dataclasses import dataclass
from typing import Any

__all__ = ["RestrictedPickle", "Stub", "text"]


def text(value: object) -> str:
    """Python-2 str / bytes / str -> str (dict keys, dtype codes)."""
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, str):
        return value
    raise ValueError(f"expected a string, got {type(value).__name__}")


@dataclass(eq=False)
class Stub:
    """A call recorded but never executed: an allow-listed global applied to args."""

    kind: str
    args: tuple
    state: object = None


@dataclass(frozen=True)
class _Global:
    kind: str


_MARK = object()
_ALLOWED_GLOBALS = {
    ("_codecs", "encode"): "encode",
    ("numpy", "dtype"): "dtype",
    ("numpy", "ndarray"): "ndarray",
    ("numpy.core.multiarray", "_reconstruct"): "ndarray",
    ("numpy._core.multiarray", "_reconstruct"): "ndarray",
}


class RestrictedPickle:
    """Evaluate a pickle opcode stream symbolically.

    Only containers, ints, strings and the few globals needed for a numpy
    uint8 array are accepted.  Globals are never imported and REDUCE/BUILD
    never call anything: they produce :class:`Stub` records (``_codecs.encode``
    of a latin-1 str, how Python 3 pickles bytes at protocol 2, is evaluated
    directly).  Anything else raises ValueError.
    """

    _CONSTANTS = {"NONE": None, "NEWTRUE": True, "NEWFALSE": False}
    _EMPTY = {"EMPTY_DICT": dict, "EMPTY_LIST": list, "EMPTY_TUPLE": tuple}
    _INTS = {"BININT", "BININT1", "BININT2", "LONG1", "LONG4"}
    _PY2_STRINGS = {"BINSTRING", "SHORT_BINSTRING"}
    _BYTES = {"BINBYTES", "SHORT_BINBYTES", "BINBYTES8"}
    _UNICODE = {"BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8"}
    _TUPLE_N = {"TUPLE1": 1, "TUPLE2": 2, "TUPLE3": 3}
    _PUT = {"PUT", "BINPUT", "LONG_BINPUT"}
    _GET = {"GET", "BINGET", "LONG_BINGET"}
    _NO_OP = {"PROTO", "FRAME"}

    def __init__(self) -> None:
        self.stack: list[object] = []
        self.memo: dict[int, object] = {}

    def run(self, data: bytes) -> object:
        """Return the (symbolic) object the pickle describes."""
        for opcode, arg, _position in pickletools.genops(io.BytesIO(data)):
            if opcode.name == "STOP":
                if len(self.stack) != 1:
                    raise ValueError("malformed pickle stack at STOP")
                return self.stack[0]
            self._step(opcode.name, arg)
        raise ValueError("pickle has no STOP opcode")

    def _step(self, name: str, arg: Any) -> None:
        if name in self._NO_OP:
            return
        if name in self._CONSTANTS:
            self.stack.append(self._CONSTANTS[name])
        elif name in self._EMPTY:
            self.stack.append(self._EMPTY[name]())
        elif name in self._INTS or name in self._UNICODE:
            self.stack.append(arg)
        elif name in self._PY2_STRINGS:
            self.stack.append(arg.encode("latin-1"))  # pickletools decodes them as latin-1
        elif name in self._BYTES:
            self.stack.append(bytes(arg))
        elif name in self._PUT:
            self.memo[arg] = self.stack[-1]
        elif name == "MEMOIZE":
            self.memo[len(self.memo)] = self.stack[-1]
        elif name in self._GET:
            self.stack.append(self.memo[arg])
        else:
            self._structural(name, arg)

    def _structural(self, name: str, arg: Any) -> None:
        if name == "MARK":
            self.stack.append(_MARK)
        elif name == "TUPLE":
            self.stack.append(tuple(self._pop_mark()))
        elif name in self._TUPLE_N:
            items = [self._pop() for _ in range(self._TUPLE_N[name])]
            self.stack.append(tuple(reversed(items)))
        elif name in ("APPEND", "APPENDS"):
            items = [self._pop()] if name == "APPEND" else self._pop_mark()
            self._top(list).extend(items)
        elif name in ("SETITEM", "SETITEMS"):
            items = [self._pop(), self._pop()][::-1] if name == "SETITEM" else self._pop_mark()
            self._top(dict).update(zip(items[::2], items[1::2]))
        elif name == "GLOBAL":
            self.stack.append(self._global(*arg.split(" ", 1)))
        elif name == "STACK_GLOBAL":
            attribute, module = self._pop(), self._pop()
            self.stack.append(self._global(text(module), text(attribute)))
        elif name == "REDUCE":
            args, func = self._pop(), self._pop()
            self.stack.append(self._call(func, args))
        elif name == "BUILD":
            state = self._pop()
            self._top(Stub).state = state
        else:
            raise ValueError(f"pickle opcode {name} is not allowed")

    def _pop(self) -> object:
        value = self.stack.pop()
        if value is _MARK:
            raise ValueError("unexpected MARK")
        return value

    def _pop_mark(self) -> list[object]:
        start = len(self.stack) - 1 - self.stack[::-1].index(_MARK)
        items = self.stack[start + 1:]
        del self.stack[start:]
        return items

    def _top(self, kind: type) -> Any:
        if not isinstance(self.stack[-1], kind):
            raise ValueError(f"expected a {kind.__name__} on the pickle stack")
        return self.stack[-1]

    @staticmethod
    def _global(module: str, attribute: str) -> _Global:
        kind = _ALLOWED_GLOBALS.get((module, attribute))
        if kind is None:
            raise ValueError(f"global {module}.{attribute} is not allowed")
        return _Global(kind)

    @staticmethod
    def _call(func: object, args: object) -> object:
        if not isinstance(func, _Global) or not isinstance(args, tuple):
            raise ValueError("unexpected REDUCE")
        if func.kind == "encode":
            text, encoding = args
            if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
                raise ValueError("unexpected _codecs.encode call")
            return text.encode("latin-1")
        if func.kind in ("ndarray", "dtype"):
            return Stub(func.kind, args)
        raise ValueError(f"calling {func.kind} is not allowed")
