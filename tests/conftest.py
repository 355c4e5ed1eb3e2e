import pytest

from tests import recipes


@pytest.fixture(autouse=True)
def _clear_calls():
    recipes.CALLS.clear()
    yield
    recipes.CALLS.clear()
