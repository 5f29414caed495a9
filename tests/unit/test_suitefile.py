"""Suite file validation: every mistake is one line naming the file and line."""

import pytest

from harness.core.suitefile import SuiteError, load_suite


def write(tmp_path, text):
    p = tmp_path / "s.yaml"
    p.write_text(text)
    return p


def test_good_file_with_user_dir(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "my_test.c").write_text("")
    specs, configs, dirs = load_suite(write(tmp_path, """\
configs: [debug-kmap-local]
timeout: 60
modules:
  - name: kmap_local_basic
  - name: my_test
    dir: mine
    params: n=3
    expect: 'kernel BUG at'
    crashes: true
"""))
    assert [s.name for s in specs] == ["kmap_local_basic", "my_test"]
    assert specs[1].params == "n=3" and specs[1].expect_log == ("kernel BUG at",)
    assert specs[1].crashes and specs[0].timeout == 60
    assert configs == ["debug-kmap-local"] and dirs["my_test"] == tmp_path / "mine"


@pytest.mark.parametrize("text,line,what", [
    ("modules:\n  - name: kmap_local_basic\n    parms: x=1\n", 3, "unknown key 'parms'"),
    ("modules:\n  - name: kmap_local_basic\n    crashes: yes please\n", 3,
     "'crashes' must be a bool"),
    ("modules:\n  - name: no_such_module\n", 2, "module 'no_such_module' not found"),
    ("timeout: -5\nmodules:\n  - name: kmap_local_basic\n", 1, "'timeout' must be a number"),
    ("modules:\n  - params: x=1\n", 2, "has no 'name'"),
    ("modules: []\n", 1, "non-empty list"),
    ("modules:\n  - name: kmap_local_basic\n    expect: ['(unclosed']\n", 3, "not a regular"),
    ("modules:\n  - name: [a\n", 3, "not valid YAML"),
    ("colour: red\nmodules:\n  - name: kmap_local_basic\n", 1, "unknown key 'colour'"),
    ("timeout: 1\nmodules:\n  - name: kmap_local_basic\ntimeout: 2\n", 4,
     "duplicate key 'timeout' (first on line 1)"),
    ("modules:\n  - name: kmap_local_basic\n    params: a=1\n    params: b=2\n", 4,
     "duplicate key 'params' (first on line 3)"),
    ("modules:\n  - {name: kmap_local_basic, name: kmap_suite}\n", 2, "duplicate key 'name'"),
    ("modules:\n  - name: kmap_local_basic\n    params: a=1; reboot\n", 3,
     "'params': ';' in 'a=1; reboot' is not KEY=VALUE"),
    ("modules:\n  - name: kmap_local_basic\n    params: depth\n", 3, "is not KEY=VALUE"),
    ("modules:\n  - name: kmap_local_basic\n    params: x=$(id)\n", 3, "holds $"),
])
def test_mistakes_name_file_and_line(tmp_path, text, line, what):
    p = write(tmp_path, text)
    with pytest.raises(SuiteError) as e:
        load_suite(p)
    assert e.value.what.startswith(f"{p}:{line}: "), e.value.what
    assert what in e.value.what and e.value.fix
    assert "\n" not in e.value.what


def test_missing_file(tmp_path):
    with pytest.raises(SuiteError, match="cannot read suite file"):
        load_suite(tmp_path / "nope.yaml")


def test_not_utf8_names_file_and_line(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_bytes(b"modules:\n  - name: kmap_local_basic\n# caf\xe9\n")
    with pytest.raises(SuiteError) as e:
        load_suite(p)
    assert e.value.what == f"{p}:3: not UTF-8 text (byte 0xe9)"
    assert "UTF-8" in e.value.fix


def test_directory_is_a_clear_error(tmp_path):
    (tmp_path / "a.yaml").write_text("")
    with pytest.raises(SuiteError) as e:
        load_suite(tmp_path)
    assert e.value.what == f"suite file {tmp_path} is a directory"
    assert e.value.fix == "pass a YAML file in it (a.yaml)"


def test_quoted_params_are_kept_as_written(tmp_path):
    specs, _, _ = load_suite(write(tmp_path, """\
modules:
  - name: kmap_local_basic
    params: 'mutate=pfn label="a b"'
"""))
    assert specs[0].params == 'mutate=pfn label="a b"'
