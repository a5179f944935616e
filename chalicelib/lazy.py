"""Modules loaded on first use, so that importing ``app.py`` (a Lambda cold start) does not
pay for pynamodb, botocore and Jinja2 before a handler needs them.

The proxy imports the real module with ``importlib.import_module`` (under the import
system's own locks) on its first attribute access, from whichever thread comes first; the
local stack serves requests and runs the time checks in several threads at once.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
from types import ModuleType


class LazyModule(ModuleType):
    def __init__(self, name: str):
        super().__init__(name)
        self.__dict__["_lock"] = threading.Lock()
        self.__dict__["_module"] = None

    def _load(self) -> ModuleType:
        module = self.__dict__["_module"]
        if module is None:
            with self.__dict__["_lock"]:
                module = self.__dict__["_module"] or importlib.import_module(self.__name__)
                self.__dict__["_module"] = module
        return module

    def __getattr__(self, attr: str):
        return getattr(self._load(), attr)

    def __repr__(self) -> str:
        state = "loaded" if self.__dict__["_module"] is not None else "not loaded yet"
        return f"<lazy module {self.__name__!r}, {state}>"


def lazy_module(name: str) -> ModuleType:
    """``name`` itself if it is already imported, else a proxy that imports it on first use."""
    if name in sys.modules:
        return sys.modules[name]
    if importlib.util.find_spec(name) is None:
        raise ImportError(f"no module named {name!r}", name=name)
    return LazyModule(name)
