"""The CleverDict methods 1.1 code calls on a Context and on dict results, checked against cleverdict itself.

1.1's Context subclassed ``cleverdict.CleverDict`` and its dict outputs became CleverDicts; generated
dicts and filters must give what CleverDict gives.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from job_orchestra import AttrDict, Context, Step
from job_orchestra.cleverdict_compat import RETIRED, CleverDictMethodRetired, aliases_of

cleverdict = pytest.importorskip("cleverdict")
CleverDict = cleverdict.CleverDict

# Keys 1.1 users had: identifiers, names with spaces or dashes, numbers. CleverDict refuses keys whose
# aliases collide ("a b" and "a_b"), so the generated dicts keep only keys with distinct aliases.
KEYS = st.one_of(
    st.from_regex(r"[A-Za-z][A-Za-z0-9]{0,6}", fullmatch=True),
    st.from_regex(r"[A-Za-z0-9][A-Za-z0-9 \-]{0,6}", fullmatch=True),
    st.integers(min_value=2, max_value=50),
)


def distinct_aliases(keys: list) -> dict:
    seen: set = set()
    out = {}
    for i, key in enumerate(keys):
        names = {str(n) for n in aliases_of(key)}
        if names & seen:
            continue
        seen |= names
        out[key] = i
    return out


def not_a_method_name(key) -> bool:  # "items", "info", ...: attribute access gives the method in both
    return not any(hasattr(kind, str(alias)) for kind in (CleverDict, Context) for alias in aliases_of(key))


DICTS = st.lists(KEYS.filter(not_a_method_name), max_size=8).map(distinct_aliases)


def context_of(data: dict) -> Context:
    ctx = Context(data)
    del ctx["context_meta"]
    return ctx


@settings(max_examples=150, deadline=None)
@given(data=DICTS, picks=st.lists(st.integers(0, 10), max_size=4), how=st.sampled_from(["ignore", "exclude", "only"]))
def test_to_dict_and_to_list_filter_as_cleverdict_does(data, picks, how):
    keys = list(data)
    names = []
    for p in picks:  # pick keys and their aliases, plus names that are no key at all
        if keys and p < 8:
            aliases = aliases_of(keys[p % len(keys)])
            names.append(aliases[p % len(aliases)])
        else:
            names.append(f"absent{p}")
    ours, theirs = context_of(data), CleverDict(data)
    if how == "only":  # CleverDict's only= matches keys, not aliases
        names = [n for n in names if n in data or str(n).startswith("absent")]
    assert ours.to_dict(**{how: names}) == theirs.to_dict(**{how: names})
    assert ours.to_list(**{how: names}) == theirs.to_list(**{how: names})
    result = AttrDict(data)
    assert result.to_dict(**{how: names}) == theirs.to_dict(**{how: names})


@settings(max_examples=150, deadline=None)
@given(key=st.one_of(KEYS, st.sampled_from([0, 1, "class", "1st", "", "x.y", "_a"])))
def test_aliases_are_cleverdicts(key):
    assert aliases_of(key) == cleverdict.cleverdict.all_aliases(key)


@settings(max_examples=100, deadline=None)
@given(data=DICTS)
def test_alias_reads_get_key_get_aliases_and_info_match_cleverdict(data):
    ours, theirs = context_of(data), CleverDict(data)
    for key in data:
        for alias in aliases_of(key):
            assert ours.get_key(alias) == theirs.get_key(alias) == key
            if isinstance(alias, str) and alias.isidentifier():
                assert getattr(ours, alias) == getattr(theirs, alias) == data[key]
        assert ours.get_aliases(key) == theirs.get_aliases(key)
        for alias in aliases_of(key)[1:]:  # item reads through an alias, as CleverDict's
            assert ours[alias] == theirs[alias] == AttrDict(data)[alias] == data[key]
            assert alias not in ours and alias not in theirs  # membership: keys only, in both
    assert info_of(ours).replace("Context:", "") == info_of(theirs).replace("CleverDict:", "")


def info_of(x):
    return x.info(as_str=True)  # names the mapping after the caller's variable, here "x" in both


def test_context_info_prints_and_names_the_variable(capsys):
    kitchen = Context({"Pasta": "al dente"})
    kitchen.info(ignore="context_meta")
    assert capsys.readouterr().out == "Context:\n    kitchen['Pasta'] == kitchen.Pasta == 'al dente'\n"


def test_to_lines_as_cleverdict():
    lines = {1: "first", 2: "second", 3: "third"}
    ctx = context_of(lines)
    assert ctx.to_lines() == CleverDict(lines).to_lines() == "first\nsecond\nthird"
    assert ctx.to_lines(start_from_key=2) == CleverDict(lines).to_lines(start_from_key=2) == "second\nthird"


def test_both_ignore_and_only_refused_as_cleverdict_does():
    with pytest.raises(TypeError, match="Only one argument"):
        Context().to_dict(ignore="a", only="a")
    with pytest.raises(TypeError, match="Only one argument"):
        CleverDict().to_dict(ignore="a", only="a")


@pytest.mark.parametrize("name", sorted(RETIRED))
def test_retired_methods_name_their_replacement(name):
    ctx = Context()
    with pytest.raises(CleverDictMethodRetired, match=rf"Context\.{name}: a cleverdict\.CleverDict method") as info:
        getattr(ctx, name)
    assert RETIRED[name] in str(info.value)
    assert isinstance(info.value, AttributeError) and not hasattr(ctx, name)
    with pytest.raises(CleverDictMethodRetired, match=rf"AttrDict\.{name}"):
        getattr(AttrDict(), name)


def test_a_key_named_like_a_method_wins_on_results_and_retired_names_stay_usable_as_keys():
    out = AttrDict(info="a key", to_dict="another", save=1)
    assert out.info == "a key" and out.to_dict == "another" and out.save == 1
    ctx = Context()
    ctx["save"] = "kept"
    assert ctx.save == "kept"


def test_context_json_refused_as_in_1_1_naming_store_and_load():
    with pytest.raises(NotImplementedError, match=r"ctx\.store\(path\)"):
        Context().to_json()
    with pytest.raises(NotImplementedError, match=r"Context\.load\(path\)"):
        Context.from_json("{}")


def test_dict_results_get_cleverdict_methods_and_cleverdict_results_stay_cleverdicts():
    class Make(Step):
        def run(self):
            return {"output": [1, 2], "my note": "n"}

    class Keep(Step):
        def run(self):
            return CleverDict({"output": 3})

    class Use(Step):
        def run(self, made, kept):
            return made.to_dict(ignore="my_note"), made.my_note, type(kept), kept.to_dict()

    as_dict, note, kind, kept = Use(depends_on=[Make(), Keep()]).materialize()
    assert as_dict == {"output": [1, 2]} and note == "n" and kind is CleverDict and kept == {"output": 3}


def test_ambiguous_alias_is_refused_not_guessed():
    ctx = Context({"a b": 1, "a-b": 2})
    with pytest.raises(AttributeError, match="alias of several keys"):
        _ = ctx.a_b


@settings(max_examples=100, deadline=None)
@given(data=DICTS, value=st.integers())
def test_attribute_writes_through_an_alias_update_the_key_as_cleverdict_does(data, value):
    for make in (context_of, AttrDict, CleverDict):
        d = make(data)
        for key in data:
            for alias in aliases_of(key):
                if isinstance(alias, str) and alias.isidentifier() and not alias.startswith("__"):
                    setattr(d, alias, value)
        expected = dict.fromkeys(data, value) | {
            k: v for k, v in data.items() if not any(isinstance(a, str) and a.isidentifier() for a in aliases_of(k))
        }
        assert {k: d[k] for k in d} == expected, make


def test_a_missing_key_is_still_a_key_error_and_keys_starting_with_underscore_are_keys():
    ctx = Context({"a b": 1, "_private": 2})
    with pytest.raises(KeyError):
        ctx["no_such_key"]
    assert ctx["_private"] == 2 and ctx.get("a_b") is None  # get() does not follow aliases, as CleverDict
    ctx.c_d = 3  # no key it is an alias of: a new key
    assert ctx["c_d"] == 3 and "c_d" in ctx
