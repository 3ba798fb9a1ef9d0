"""bugsmith's pytest plugin, installed into every environment bugsmith builds and loaded with
``-p bugsmith_pytest`` through ``PYTEST_ADDOPTS`` in every run (the test command stays as written).

* Each test's setup, call and teardown start from the same state of the global random
  generators (``random``, and numpy's once imported), as pytest-randomly does with a fixed
  seed: a test that draws from them gives the same result whichever tests ran before it, in a
  whole suite or in a selection. ``BUGSMITH_UNSEEDED=1`` leaves them alone (a baseline run
  that looks for tests whose results vary with the draw).
* ``BUGSMITH_SELECT=<file>``: run only the tests whose node ids the file lists (one per line);
  the others are deselected.
* ``BUGSMITH_COVERAGE=<file>``: record which lines each test executes (coverage.py, one dynamic
  context per test; fixtures are recorded on their own and attributed to every test that uses
  them, whatever their scope) and write them to the file as JSON. What runs while a test module
  is collected (its imports, module and class bodies) is recorded as ``collect:<module>`` and
  counts for every test of that module; what runs outside both (plugins, conftest files) under
  the context ``""``.
"""

import json
import os
import random
import sys

_coverage = None
_stack = []

if os.environ.get("BUGSMITH_COVERAGE"):
    try:
        import coverage

        # As early as a plugin can: before conftest files and test modules are imported.
        _coverage = coverage.Coverage(data_file=None, config_file=False, source=[os.getcwd()])
        _coverage.start()
    except Exception as error:  # coverage missing or broken: the run goes on, without it
        sys.stderr.write(f"bugsmith: no per-test coverage ({error})\n")
        _coverage = None

_users = {}
_names = {}


def _junit_names(item):
    """The (classname, name, file) pytest's JUnit XML (xunit1) writes for an item."""
    path, bracket, params = item.nodeid.partition("[")
    names = path.split("::")
    names[0] = names[0].replace("/", ".")
    if names[0].endswith(".py"):
        names[0] = names[0][:-3]
    names[-1] += bracket + params
    return [".".join(names[:-1]), names[-1], item.location[0]]


def _switch(context):
    if _coverage is not None:
        _coverage.switch_context(context)


def _selected_files():
    selected_file = os.environ.get("BUGSMITH_SELECT")
    if not selected_file:
        return None
    with open(selected_file, encoding="utf-8") as handle:
        return {line.split("::")[0].strip() for line in handle if line.strip()}


_files = _selected_files()


def _ignored(path, config):
    """With a selection, test files none of whose tests are selected are not even imported."""
    path = str(path)
    if _files is None or not path.endswith(".py") or os.path.basename(path) in ("__init__.py", "conftest.py"):
        return None
    root = str(getattr(config, "rootpath", None) or config.rootdir)
    return True if os.path.relpath(path, root).replace(os.sep, "/") not in _files else None


try:
    import pytest as _pytest

    if int(_pytest.__version__.split(".")[0]) >= 7:

        def pytest_ignore_collect(collection_path, config):
            return _ignored(collection_path, config)

    else:

        def pytest_ignore_collect(path, config):
            return _ignored(path, config)

except ImportError:
    pass


def pytest_sessionstart(session):
    """Before any test module is collected, import the work tree's own packages, so what runs at
    their import is recorded outside tests (it runs for every test), not under the first test
    module that happens to import them."""
    if _coverage is None:
        return
    import importlib

    root = str(getattr(session.config, "rootpath", None) or session.config.rootdir)
    for base in (root, os.path.join(root, "src")):
        if not os.path.isdir(base):
            continue
        for name in sorted(os.listdir(base)):
            if name.startswith(("test", ".")) or not os.path.isfile(os.path.join(base, name, "__init__.py")):
                continue
            try:
                importlib.import_module(name)
            except BaseException:  # an import that fails here fails in the tests too
                pass


def pytest_collection_modifyitems(session, config, items):
    selected_file = os.environ.get("BUGSMITH_SELECT")
    if selected_file:
        with open(selected_file, encoding="utf-8") as handle:
            wanted = {line.rstrip("\n") for line in handle if line.strip()}
        keep = [item for item in items if item.nodeid in wanted]
        dropped = [item for item in items if item.nodeid not in wanted]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
        items[:] = keep
    if _coverage is not None:
        for item in items:
            _names[item.nodeid] = _junit_names(item)
            info = getattr(item, "_fixtureinfo", None)
            for defs in getattr(info, "name2fixturedefs", {}).values():
                for fixturedef in defs:
                    _users.setdefault(_fixture_key(fixturedef), []).append(item.nodeid)


def _fixture_key(fixturedef):
    return f"fixture:{fixturedef.baseid}::{fixturedef.argname}"


_SEEDED = not os.environ.get("BUGSMITH_UNSEEDED")


def _reseed():
    if not _SEEDED:
        return
    random.seed(0)
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        try:
            numpy.random.seed(0)
        except Exception:  # a numpy stand-in without it
            pass


try:
    import pytest

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(item):
        _reseed()

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_call(item):
        _reseed()

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_teardown(item, nextitem):
        _reseed()

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(item, nextitem):
        _stack.append(item.nodeid)
        _switch(item.nodeid)
        yield
        _stack.pop()
        _switch(_stack[-1] if _stack else "")

    @pytest.hookimpl(hookwrapper=True)
    def pytest_make_collect_report(collector):
        if not isinstance(collector, pytest.Module):
            yield
            return
        key = f"collect:{collector.nodeid}"
        _stack.append(key)
        _switch(key)
        yield
        _stack.pop()
        _switch(_stack[-1] if _stack else "")

    @pytest.hookimpl(hookwrapper=True)
    def pytest_fixture_setup(fixturedef, request):
        key = _fixture_key(fixturedef)
        _stack.append(key)
        _switch(key)
        yield
        _stack.pop()
        _switch(_stack[-1] if _stack else "")

except ImportError:  # imported outside pytest
    pass


def pytest_sessionfinish(session, exitstatus):
    target = os.environ.get("BUGSMITH_COVERAGE")
    if _coverage is None or not target:
        return
    _coverage.stop()
    data = _coverage.get_data()
    root = os.getcwd()
    contexts = sorted(data.measured_contexts())
    index = {context: i for i, context in enumerate(contexts)}
    files = {}
    for path in data.measured_files():
        relative = os.path.relpath(path, root)
        if relative.startswith(".."):
            continue
        lines = {}
        for line, covering in (data.contexts_by_lineno(path) or {}).items():
            lines[str(line)] = sorted(index[c] for c in covering if c in index)
        files[relative.replace(os.sep, "/")] = lines
    fixtures = {key: sorted(set(users)) for key, users in _users.items()}
    with open(target, "w", encoding="utf-8") as handle:
        json.dump(
            {"version": 1, "contexts": contexts, "fixtures": fixtures, "names": _names, "files": files}, handle
        )
