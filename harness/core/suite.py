"""What a run runs: the modules, their parameters, and the kernel messages a negative test
must provoke (an expected BUG or WARN). Pure: verdicts are decided here from results.
"""

import fnmatch
import re
import shlex
from dataclasses import dataclass, replace

from .errors import HarnessError

# kernel log lines that mean something went wrong, unless a spec expects them. A WARN reads
# `WARNING: CPU: 0 PID: 67 at mm/highmem.c:623 f+0x66/0x108` up to 6.12 and `WARNING:
# mm/highmem.c:623 at f+0x66/0x108, CPU#0: insmod/67` (or `WARNING: at f+..., CPU#0: ...`
# without a file) in 7.2 (kernel/panic.c:1082-1088, __warn())
TROUBLE = re.compile(r"(WARNING: (?:CPU: \d+ PID: \d+ at |\S+:\d+ at |at )[^\n]+|"
                     r"kernel BUG at [^\n]+|BUG: [^\n]+|"
                     r"Oops: [^\n]+|general protection fault[^\n]*|Kernel panic[^\n]*)")
MODULE_TIMEOUT_S = 300.0   # a module's timeout unless its suite file or --timeout says
# one insmod parameter word: KEY=VALUE, KEY a C identifier (array values are comma lists)
PARAM_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=.*", re.S)


class SelectionError(HarnessError):
    """A module selection or parameter (from --module, --param or a suite) that cannot run."""


@dataclass(frozen=True)
class ModuleSpec:
    """One module run. `expect_log`: regexes that must each match the kernel log of this
    run (an expected BUG or WARN); `crashes`: the module is expected to die in the kernel
    (insmod killed), after which the guest is rebooted for the next module; `allow_log`:
    messages tolerated but not required (what follows such a crash)."""

    name: str
    params: str = ""
    expect_log: tuple[str, ...] = ()
    crashes: bool = False
    timeout: float = MODULE_TIMEOUT_S
    allow_log: tuple[str, ...] = ()  # tolerated, not required: the aftermath of a crash
    cases: tuple[str, ...] = ()      # globs of the KTAP cases judged (`--case`); (): all

    @property
    def title(self) -> str:
        return f"{self.name} {self.params}".strip()


def trouble_lines(log: str) -> list[str]:
    return [m.group(0).strip() for m in TROUBLE.finditer(log)]


def unexpected_trouble(spec: ModuleSpec, log: str) -> list[str]:
    """Kernel trouble in `log` that no `expect_log` pattern of the spec accounts for."""
    pats = [re.compile(p) for p in (*spec.expect_log, *spec.allow_log)]
    if spec.crashes:  # the oops that reports an expected BUG
        pats.append(re.compile(r"^Oops: "))
    return [t for t in trouble_lines(log) if not any(p.search(t) for p in pats)]


def missing_expected(spec: ModuleSpec, log: str) -> list[str]:
    return [p for p in spec.expect_log if not re.search(p, log)]


def params_problem(params: str) -> str | None:
    """What is wrong with an insmod parameter string, or None if it is fine.

    The string is pasted into a guest shell line after `insmod x.ko`, so it must split (as
    the shell would, quotes allowed) into KEY=VALUE words, KEY a C identifier, with no
    `;`, `|`, `&`, `<`, `>`, `$` or backquote that the shell would act on.
    """
    bad = sorted({c for c in params if ord(c) < 0x20 and c not in " \t\n" or ord(c) == 0x7f})
    if bad:  # the serial console's tty (and QEMU's stdio) acts on them: ^C stops QEMU
        return (f"{params!r} holds control characters "
                f"({', '.join(f'0x{ord(c):02x}' for c in bad)}): the guest's console would "
                "act on them")
    lexer = shlex.shlex(params, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        words = list(lexer)
    except ValueError as e:  # "No closing quotation"
        return f"{params!r} does not split into words ({e})"
    for w in words:
        if not PARAM_WORD.fullmatch(w):
            return f"{w!r} in {params!r} is not KEY=VALUE"
        if any(c in w for c in "$`"):
            return f"{w!r} in {params!r} holds $ or ` (the guest shell would expand it)"
    return None


def check_params(params: str, where: str) -> None:
    """Raise SelectionError if `params` (from `where`, e.g. "--param m:...") is not
    space-separated KEY=VALUE words."""
    problem = params_problem(params)
    if problem:
        raise SelectionError(f"{where}: {problem}",
                             "write space-separated KEY=VALUE words, e.g. which=order depth=3")


def _base(suite: tuple[ModuleSpec, ...], names: list[str]) -> list[ModuleSpec]:
    """The suite's entries for `names` in the order given (all the suite when none); a name
    not in the suite is a plain module."""
    if not names:
        return list(suite)
    out: list[ModuleSpec] = []
    for n in dict.fromkeys(names):
        out += [s for s in suite if s.name == n] or [ModuleSpec(n)]
    return out


def _check_param_modules(base: list[ModuleSpec], params: dict[str, str]) -> None:
    in_run = list(dict.fromkeys(s.name for s in base))
    stray = [m for m in params if m not in in_run]
    if stray:
        raise SelectionError(f"--param for {', '.join(stray)}, which is not in this run "
                             f"(the run has: {', '.join(in_run)})",
                             f"add --module {stray[0]}, or give --param for a module of the run")


def select(suite: tuple[ModuleSpec, ...], names: list[str], params: dict[str, str],
           timeout: float | None = None) -> tuple[ModuleSpec, ...]:
    """The specs for `highmem run [--module N]... [--param N:k=v]...`.

    No names: the whole suite. A name in the suite selects all its entries (with their
    expected messages); other names are plain modules; modules run in the order of
    `names`. `params` for a module replace the suite's; they keep the expectations of the
    suite entry with the same parameters. `timeout`, when given, replaces every entry's.
    Raises SelectionError for `params` of a module that is not in the run, or not KEY=VALUE.
    """
    base = _base(suite, names)
    _check_param_modules(base, params)
    for m, p in params.items():
        check_params(p, f"--param {m}:{p}")
    out: list[ModuleSpec] = []
    for s in base:
        merged = s.name in params  # several entries of one module become one with --param
        if merged:
            p = params[s.name]
            s = next((d for d in suite if d.name == s.name and d.params == p),
                     ModuleSpec(s.name, p))
        s = ModuleSpec(s.name, s.params, s.expect_log, s.crashes,
                       s.timeout if timeout is None else timeout, s.allow_log, s.cases)
        if not (merged and s in out):  # a suite may repeat an entry on purpose
            out.append(s)
    return tuple(out)


def select_cases(suite: tuple[ModuleSpec, ...], globs: list[str]) -> tuple[ModuleSpec, ...]:
    """`highmem run --case MODULE.CASE` (repeatable, fnmatch globs on both parts): only the
    entries of a module some glob names, each judged on the cases its globs match (a case
    not matched is left out of the verdict; what no case carries - a crash, a lost log, a
    checkpoint no case claims - still counts). SelectionError when no entry matches."""
    if not globs:
        return suite
    pairs = []
    for g in globs:
        mod, dot, case = g.partition(".")
        if not mod:
            raise SelectionError(f"--case {g!r} names no module",
                                 "write --case MODULE.CASE, e.g. --case 'kmap_suite.kmap_*'")
        pairs.append((mod, case if dot else "*"))
    out = []
    for s in suite:
        mine = tuple(c for m, c in pairs if fnmatch.fnmatchcase(s.name, m))
        if mine:
            out.append(replace(s, cases=mine))
    if not out:
        raise SelectionError(f"--case {' '.join(globs)} matches no module of the suite",
                             "give MODULE.CASE with a module of the suite "
                             "(highmem run --help; the suite file lists them)")
    return tuple(out)


def parse_params(items: list[str], option: str = "--param") -> dict[str, str]:
    """`--param MODULE:key=value` (repeatable) -> {module: "key=value key2=value2"}; the
    same for `highmem run --param` and pytest's `--highmem-param`."""
    out: dict[str, str] = {}
    for item in items:
        mod, sep, kv = item.partition(":")
        if not mod or not sep or "=" not in kv:
            raise SelectionError(f"{option} {item!r} is not MODULE:key=value",
                                 f"write e.g. {option} kmap_local_basic:mutate=pfn")
        out[mod] = (out.get(mod, "") + " " + kv).strip()
    return out


class OwnModuleError(HarnessError):
    """A user's module directory builds a module of the harness's own name."""


def refuse_own_names(user_dir: object, user_names: list[str], own: list[str]) -> None:
    """A user module may not take the name of one of the harness's own (hm_checkpoint,
    hm_hold, the suite's): the later .ko would replace ours in the image, and a module of
    the user's could then serve the checkpoints and judge itself."""
    clash = sorted(set(user_names) & set(own))
    if clash:
        raise OwnModuleError(
            f"{user_dir} builds {', '.join(n + '.ko' for n in clash)}: a module of that name "
            "is the harness's own (modules/)",
            "rename the module in that directory's Kbuild/Makefile (obj-m) and its .c")
