"""One error tree: every exception class the pipeline defines is a VideoPipelineError, and
so a SchedulerError with the exit code and HTTP status the shells show."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import services.pipeline as pipeline
from services.pipeline.errors import DefinitionError, VideoPipelineError
from services.scheduler.errors import SchedulerError


def pipeline_exceptions() -> list[type[BaseException]]:
    found = []
    for module in pkgutil.walk_packages(pipeline.__path__, f"{pipeline.__name__}."):
        loaded = importlib.import_module(module.name)
        for _, value in inspect.getmembers(loaded, inspect.isclass):
            if issubclass(value, BaseException) and value.__module__ == loaded.__name__:
                found.append(value)
    return found


def test_every_pipeline_exception_derives_from_the_one_base() -> None:
    classes = pipeline_exceptions()
    assert len(classes) >= 10  # the walk found them (state errors, providers' errors, ...)
    strays = sorted(f"{c.__module__}.{c.__qualname__}" for c in classes if not issubclass(c, VideoPipelineError))
    assert strays == []
    assert issubclass(VideoPipelineError, SchedulerError)


def test_the_base_maps_to_an_exit_code_and_an_http_status() -> None:
    assert (VideoPipelineError.exit_code, VideoPipelineError.http_status) == (1, 500)
    assert DefinitionError.exit_code == 2
    body = DefinitionError("config/pipeline.json: States.X: bad").to_dict()
    assert body == {"error": "invalid_definition", "message": "config/pipeline.json: States.X: bad"}


def test_the_package_exports_its_public_names_lazily() -> None:
    for name in pipeline.__all__:
        assert getattr(pipeline, name) is not None, name
