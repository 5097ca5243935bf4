"""The README and the documentation site: the site builds strictly, every Python block runs, every link
of the README resolves, and the generated reference shows what the code says."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from doc_examples import ROOT, blocks, example_block, examples

from eapo_agents.algorithms.eapo import EAPOOptions
from eapo_agents.experiments.compare import CompareConfig
from eapo_agents.training.registry import built_in

README = ROOT / "README.md"


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site built from scratch in strict mode: any warning (a broken link or reference, a page
    outside the navigation, a docstring that does not parse) fails the build."""
    out = tmp_path_factory.mktemp("site")
    build = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", "docs", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr
    return out


def test_the_site_builds_strictly_with_every_page_and_its_local_assets(site):
    pages = {path.relative_to(site).as_posix() for path in site.rglob("*.html")}
    docs = ROOT / "docs"
    sources = {
        path.relative_to(docs).with_suffix(".html").as_posix()
        for path in docs.rglob("*.md")
        if not {"_build", "_generated"} & set(path.relative_to(docs).parts)
    }
    assert sources <= pages
    grpo = (site / "algorithms" / "grpo.html").read_text()
    assert "_static/mathjax/tex-chtml.js" in grpo and (site / "_static" / "mathjax" / "tex-chtml.js").exists()
    assert not re.search(r"<script[^>]+src=\"https?://", grpo)  # nothing is fetched from a network
    results = (site / "results.html").read_text()
    for plot in ("compare_accuracy.png", "compare_steps480_consult.png"):
        assert f"_images/{plot}" in results and (site / "_images" / plot).exists()


def test_generated_tables_show_the_code_defaults_bounds_and_help(site):
    eapo = (site / "algorithms" / "eapo.html").read_text()
    scale = EAPOOptions.__dataclass_fields__["acceptance_scale"]
    row = table_row(eapo, "--acceptance-scale")
    assert (
        str(scale.default) in row and "a float &gt; 0" in row and scale.metadata["help"].split(":")[0] in row
    )
    assert "EAPOOptions" in row and "GRPOOptions" in eapo  # declared where, inherited fields included
    cli = (site / "cli.html").read_text()
    row = table_row(cli[cli.index('id="eapo-gym-compare"') :], "--eval-every")
    assert f"(default: {CompareConfig().eval_every})" in row  # compare's flags come from its dataclass
    assert "--clip-high" in cli  # train's flags come from the options too


def table_row(html: str, flag: str) -> str:
    """The first table row of ``html`` whose first cell is ``flag``."""
    return next(
        row for row in re.findall(r"<tr.*?</tr>", html, re.S) if f'<span class="pre">{flag}</span>' in row
    )


def test_every_python_block_is_a_named_example_that_a_test_runs():
    unnamed = [
        (page.name, code.splitlines()[0])
        for page, name, lang, code in blocks()
        if lang == "python" and not name
    ]
    assert not unnamed
    cli_tests = (ROOT / "tests" / "test_cli.py").read_text()
    for name, (lang, _) in examples().items():
        if lang == "python" and not name.endswith(".py"):
            assert name in SNIPPET_CHECKS, f"{name}: a Python snippet without a check in SNIPPET_CHECKS"
        else:
            assert f'"{name}"' in cli_tests, f"{name}: a file or commands that tests/test_cli.py does not run"


def _readme_env(namespace, printed):
    info = namespace["info"]
    assert namespace["reward"] == 1.0 and info["correct"] and info["consults"] == 1
    assert printed.startswith("\n<reply>") and "unavailable" not in printed  # the expert answered


def _first_steps(namespace, printed):
    assert namespace["terminated"] and namespace["info"]["well_formed"] and namespace["info"]["consults"] == 1
    assert "<reply>" in namespace["env"].unwrapped.transcript


def _schedules(namespace, printed):
    env, envs, s = namespace["env"].unwrapped, namespace["envs"], namespace["s"]
    assert env.acceptance_rate == pytest.approx(1 / s) and env.turn_budget < 10
    assert envs.unwrapped.envs[0].acceptance_rate == pytest.approx(1 / s)


def _own_data(namespace, printed):
    env = namespace["env"].unwrapped
    env.reset(seed=0)
    assert env.problem.answer == "4"


def _custom_expert_env(namespace, printed):
    env = namespace["env"]
    env.reset(seed=0)
    *_, info = env.step("<expert>Where do I start?</expert>")
    assert "Start with" in info["feedback"] and info["accepted"] == 1


SNIPPET_CHECKS = {
    "readme-env": _readme_env,
    "env-first-steps": _first_steps,
    "env-schedules": _schedules,
    "problems-own-data": _own_data,
    "custom-expert-env": _custom_expert_env,
}


@pytest.mark.parametrize("name", sorted(SNIPPET_CHECKS))
def test_python_snippet_runs_as_printed(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "my_experts", raising=False)
    (tmp_path / "my_experts.py").write_text(example_block("my_experts.py"))
    record = {"question": "Ann has 3 pens and buys 4. How many pens?", "answer": "3+4=7 pens.\n#### 7"}
    (tmp_path / "gsm8k_train.jsonl").write_text(json.dumps(record) + "\n")
    namespace: dict = {"__name__": "__snippet__"}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(example_block(name), name, "exec"), namespace)
    SNIPPET_CHECKS[name](namespace, printed.getvalue())


def github_anchor(heading: str) -> str:
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_readme_is_short_its_links_resolve_and_its_headline_is_the_results_page():
    text = README.read_text()
    assert len(text.splitlines()) < 200
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if target.startswith("https://"):
            continue
        path, _, anchor = target.partition("#")
        page = README.parent / path if path else README
        assert page.exists(), target
        if anchor:
            headings = re.findall(r"^#+ (.+)$", page.read_text(), re.M)
            assert anchor in {github_anchor(heading) for heading in headings}, target
    results = (ROOT / "docs" / "results.md").read_text()
    for number in ("+1.0 ± 0.7", "+3.0 ± 0.3"):
        assert number in text and number in results


def test_every_built_in_algorithm_has_a_readme_line_a_page_and_a_row_in_the_generated_table(site):
    """The registry is the one list of algorithms: a new file there without its page or README line
    fails here."""
    spec = importlib.util.spec_from_file_location("reference", ROOT / "docs" / "_ext" / "reference.py")
    reference = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(reference)
    text = README.read_text()
    table = (site / "algorithms" / "index.html").read_text()
    for algo in built_in():
        page = reference.ALGORITHM_PAGES.get(algo, algo)
        assert f"[`{algo}`](docs/algorithms/{page}.md)" in text, algo
        assert (ROOT / "docs" / "algorithms" / f"{page}.md").exists(), algo
        assert f'<span class="pre">{algo}</span>' in table, algo  # a row of its own
