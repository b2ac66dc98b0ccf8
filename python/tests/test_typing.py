"""The package is typed: py.typed ships, and the native module's stub names
exactly what the module has."""

import ast
import inspect
import pathlib

import argus
from argus import _argus


def _stub() -> ast.Module:
    path = pathlib.Path(argus.__file__).with_name("_argus.pyi")
    return ast.parse(path.read_text())


def test_py_typed_ships():
    assert pathlib.Path(argus.__file__).with_name("py.typed").exists()


def test_the_stub_names_every_native_item():
    stub = _stub()
    top = {
        node.name
        for node in stub.body
        if isinstance(node, (ast.ClassDef, ast.FunctionDef))
    }
    native = {name for name in dir(_argus) if not name.startswith("_")}
    assert top == native
    for node in stub.body:
        if not isinstance(node, ast.ClassDef) or not issubclass(getattr(_argus, node.name), object):
            continue
        cls = getattr(_argus, node.name)
        if issubclass(cls, BaseException):
            continue
        stubbed = {n.name for n in node.body if isinstance(n, ast.FunctionDef)}
        actual = {
            name
            for name, _ in inspect.getmembers(cls)
            if not name.startswith("_") or name in ("__enter__", "__exit__", "__len__")
        }
        assert stubbed - {"__init__"} == actual, node.name
