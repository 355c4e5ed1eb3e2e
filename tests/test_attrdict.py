"""AttrDict: the dict with attribute access used for dict outputs."""

from __future__ import annotations

import pickle

import dill
import pytest

from job_orchestra import AttrDict
from job_orchestra.attrdict import as_attrdict


def test_attribute_and_item_access_agree():
    d = AttrDict(a=1)
    d.b = 2
    assert d.a == d["a"] == 1 and d["b"] == 2
    del d.a
    assert "a" not in d
    with pytest.raises(AttributeError, match="'zz'"):
        _ = d.zz
    assert "b" in dir(d)


def test_dicts_become_attrdicts_other_values_stay():
    src = {"x": 1}
    out = as_attrdict(src)
    assert type(out) is AttrDict and out == src
    same = AttrDict(y=1)
    assert as_attrdict(same) is same
    assert as_attrdict([1]) == [1]


@pytest.mark.parametrize("module", [pickle, dill])
def test_pickles(module):
    d = AttrDict(a=[1], b={"c": 2})
    back = module.loads(module.dumps(d))
    assert type(back) is AttrDict and back == d and back.a == [1]
