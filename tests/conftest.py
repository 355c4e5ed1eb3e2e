import pytest

from tests import recipes
from tests.s3_server import s3_endpoint, s3_url  # noqa: F401 (fixtures: a moto S3 server, a fresh s3:// prefix)


@pytest.fixture(autouse=True)
def _clear_calls():
    recipes.CALLS.clear()
    yield
    recipes.CALLS.clear()
