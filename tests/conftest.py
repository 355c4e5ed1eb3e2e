import pytest

from tests import recipes
from tests.s3_server import s3_endpoint, s3_url  # noqa: F401 (fixtures: a moto S3 server, a fresh s3:// prefix)


@pytest.fixture(autouse=True)
def _clear_calls():
    recipes.CALLS.clear()
    yield
    recipes.CALLS.clear()


@pytest.fixture(params=["inline", "value-files"])
def layout(request, monkeypatch) -> str:
    """A persistent-cache test run twice: small values inline in their records, and every value in a value
    file of its own (``INLINE_MAX`` set to 0), so both ways of storing a value are covered."""
    if request.param == "value-files":
        import job_orchestra.cache as cache_module

        monkeypatch.setattr(cache_module, "INLINE_MAX", 0)
    return request.param
