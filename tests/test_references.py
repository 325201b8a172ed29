"""The works a methods section cites: BibTeX a journal or a reference manager accepts as it is,
the reference list under methods.md formatted from the same entries, and every tool the text
names cited where it names it."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from helpers.core.jsonio import read_json, write_json
from helpers.reporting import references
from helpers.reporting.methods import methods
from helpers.reporting.references import REFERENCES, Citations
from test_methods import _metrics, _run

# Venues that give their papers no DOI: the ICLR and NeurIPS proceedings, PMLR (ICML), UAI,
# JMLR, USENIX OSDI and Dr. Dobb's Journal. Every other journal or proceedings paper has one.
NO_DOI = re.compile(
    r"Learning Representations|Neural Information Processing Systems|Machine Learning Research"
    r"|Uncertainty in Artificial Intelligence|USENIX|Dr\. Dobb"
)


def _entries() -> dict[str, dict[str, str]]:
    """Every entry's fields, by key."""
    return {key: references.fields(key) for key in REFERENCES}


def test_every_journal_and_proceedings_paper_carries_its_doi() -> None:
    for key, entry in _entries().items():
        if "doi" in entry:
            assert re.fullmatch(r"10\.\d{4,}/\S+", entry["doi"]), key
        elif entry["type"] in {"article", "inproceedings"}:
            venue = entry.get("journal", "") + entry.get("booktitle", "") + entry.get("series", "")
            assert NO_DOI.search(venue), f"{key} has no DOI"
    assert references.fields("he2016deep")["doi"] == "10.1109/CVPR.2016.90"
    assert references.fields("kossaifi2017afew")["doi"] == "10.1016/j.imavis.2017.02.001"


def test_author_lists_are_whole() -> None:
    cut = [key for key, entry in _entries().items() if entry["author"].endswith("and others")]
    assert cut == ["chollet2015keras"]  # Keras asks to be cited so: its contributors are many
    assert references.fields("abadi2016tensorflow")["author"].count(" and ") == 21
    assert references.fields("pedregosa2011scikit")["author"].count(" and ") == 15
    assert references.fields("kalamkar2019study")["author"].count(" and ") == 18
    assert references.fields("goodfellow2013challenges")["author"].count(" and ") == 27


def test_fields_hold_what_bibtex_styles_expect() -> None:
    for key, entry in _entries().items():
        # an edition as a word: plainnat prints "SAGE, fourth edition", not "4 edition"
        assert re.fullmatch(r"[A-Z][a-z]+", entry.get("edition", "First")), key
        # a URL in url, where styles print and break it, not as text in another field
        assert not [name for name, value in entry.items() if "://" in value and name != "url"]
        if "arXiv:" in entry.get("howpublished", "") or "eprint" in entry:
            assert entry["archiveprefix"] == "arXiv", key
            assert re.fullmatch(r"\d{4}\.\d{4,5}", entry["eprint"]), key
            if entry["type"] == "misc":
                assert entry["url"] == f"https://arxiv.org/abs/{entry['eprint']}", key
                assert entry["howpublished"] == f"arXiv:{entry['eprint']}", key


def test_the_reference_list_reads_as_the_citations_do() -> None:
    listed = references.reference_list(
        ["kingma2015adam", "lin1989concordance", "goyal2017accurate", "krippendorff2018content"]
    )
    assert listed.startswith("### References\n\n")
    works = listed.split("\n\n")[1:]
    assert works == [
        "Goyal, P., Doll\u00e1r, P., Girshick, R., Noordhuis, P., Wesolowski, L., Kyrola, A., "
        "Tulloch, A., Jia, Y. and He, K. (2017). Accurate, Large Minibatch SGD: Training ImageNet "
        "in 1 Hour. arXiv:1706.02677. <https://arxiv.org/abs/1706.02677>",
        "Kingma, D. P. and Ba, J. (2015). Adam: A Method for Stochastic Optimization. In "
        "*International Conference on Learning Representations (ICLR)*. arXiv:1412.6980.",
        "Krippendorff, K. (2018). Content Analysis: An Introduction to Its Methodology (Fourth "
        "edition). SAGE.",
        "Lin, L. I.-K. (1989). A Concordance Correlation Coefficient to Evaluate Reproducibility. "
        "*Biometrics*, 45(1), 255\u2013268. <https://doi.org/10.2307/2532051>\n",
    ]
    every = references.reference_list(REFERENCES)
    assert "\\" not in every and "{" not in every  # TeX spelled out: no accent commands left
    assert "Duchesnay, \u00c9. (2011)" in every and "Chollet, F. et al. (2015). Keras." in every
    assert references.reference_list([]) == ""


def test_two_works_that_would_read_alike_are_told_apart_by_a_letter() -> None:
    cite = Citations()
    text = f"ExpW {cite('zhang2018expw')}, mixup {cite('zhang2018mixup')}, "
    text += f"SGD {cite.within('kingma2015adam')}"
    assert references.markdown(text) == (
        "ExpW (Zhang et al., 2018b), mixup (Zhang et al., 2018a), SGD Kingma & Ba, 2015"
    )
    listed = references.reference_list(references.cited(text))
    assert listed.index("(2018a). mixup") < listed.index("(2018b). From Facial Expression")
    alone = cite("zhang2018mixup")
    assert references.markdown(alone) == "(Zhang et al., 2018)"
    assert "(2018). mixup" in references.reference_list(references.cited(alone))


def test_methods_md_ends_with_the_list_of_the_works_it_cites(tmp_path: Path) -> None:
    section = methods(_run(tmp_path))
    markdown = section.markdown()
    text, listed = markdown.split("\n\n### References\n\n")
    assert "### Before you use this text" not in listed
    works = listed.rstrip("\n").split("\n\n")
    assert len(works) == len(section.cited) and works == sorted(works, key=str.casefold)
    for key in section.cited:  # each in-text citation resolves to one entry of the list
        short, _ = REFERENCES[key]
        surname, year = short.split(" ")[0].rstrip(","), short.rsplit(", ", 1)[1]
        assert f"({short}" in text or f"; {short}" in text, key
        assert sum(w.startswith(surname) and f"({year})" in w for w in works) == 1, key
    checked = methods(_run(tmp_path / "b", source="folders"))
    assert checked.checks
    assert checked.markdown().index("### Before you use this text") < checked.markdown().index(
        "### References"
    )


def test_the_tools_the_text_names_are_cited_where_it_names_them(tmp_path: Path) -> None:
    scores = _metrics(valence={"ccc": 0.41, "sagr": 0.7}, arousal={"ccc": 0.3, "sagr": 0.6})
    run = _run(tmp_path, scores=scores)
    section = methods(run)
    text = section.text
    assert "near-duplicate images (perceptual hashes at most 4" in text
    assert "of their 64 bits apart; Zauner, 2010)" in text
    assert "Transforms by OpenCV (Bradski, 2000)" in text
    assert "(SAGR; Kossaifi et al., 2017)" in text
    assert "their mirrors, averaged; Krizhevsky et al., 2012)" in text
    assert set(section.cited) >= {
        "zauner2010implementation",
        "bradski2000opencv",
        "kossaifi2017afew",
        "krizhevsky2012imagenet",
    }
    latex = section.latex()
    assert r"64 bits apart; \citealp{zauner2010implementation})" in latex
    assert r"Transforms by OpenCV \citep{bradski2000opencv}" in latex
    # a cross-validation fold's splits cite it too
    manifest = read_json(run.manifest)
    write_json(run.manifest, {**manifest, "fold": {"fold": 1, "folds": 2}})
    assert "64 bits apart; Zauner, 2010) kept in one fold" in methods(run).text


def test_a_work_the_text_does_not_cite_stays_out_of_the_bibliography(tmp_path: Path) -> None:
    # one view only: ten-crop is not described, so its paper is not cited
    scores = _metrics(tta="none", tta_validation=None, without_tta=None)
    section = methods(_run(tmp_path, scores=scores))
    assert "ten-crop" not in section.text
    assert "krizhevsky2012imagenet" not in section.cited
    assert "krizhevsky2012imagenet" not in section.bibtex
    entries = re.findall(r"^@\w+\{([^,]+),", section.bibtex, flags=re.MULTILINE)
    assert entries == list(section.cited) == list(references.cited(section.source))


@pytest.mark.skipif(
    not (shutil.which("pdflatex") and shutil.which("bibtex")), reason="no pdflatex or bibtex"
)
def test_methods_tex_and_every_entry_compile_with_the_packages_its_header_names(
    tmp_path: Path,
) -> None:
    section = methods(_run(tmp_path))
    latex = section.latex()
    packages = re.findall(r"\\usepackage\{(\w+)\}", latex.split("\n\n")[0])
    assert {"natbib", "url"} <= set(packages)
    folder = tmp_path / "tex"
    folder.mkdir()
    (folder / "methods.tex").write_text(latex)
    (folder / "references.bib").write_text(references.bibtex(REFERENCES))
    (folder / "doc.tex").write_text(
        "\\documentclass{article}\\usepackage[T1]{fontenc}"
        + "".join(f"\\usepackage{{{p}}}" for p in packages)
        + "\n\\begin{document}\n\\input{methods}\n\\nocite{*}\n"
        "\\bibliographystyle{plainnat}\\bibliography{references}\n\\end{document}\n"
    )

    def run(*command: str) -> str:
        """One TeX step in the folder; its terminal output."""
        done = subprocess.run(command, cwd=folder, capture_output=True, text=True, check=False)
        return done.stdout

    run("pdflatex", "-interaction=nonstopmode", "doc")
    bibtex = run("bibtex", "doc")
    run("pdflatex", "-interaction=nonstopmode", "doc")
    run("pdflatex", "-interaction=nonstopmode", "doc")
    log = (folder / "doc.log").read_text(errors="replace")
    assert "Warning" not in bibtex, bibtex
    assert not re.findall(r"^!.*", log, flags=re.MULTILINE)
    assert "undefined" not in log
    assert (folder / "doc.pdf").is_file()


def test_the_reports_results_table_comes_before_the_references(tmp_path: Path) -> None:
    section = methods(_run(tmp_path))
    markdown = section.markdown(table="**Table: results.** a caption\n\n| model |\n|---|\n")
    assert markdown.index("**Table: results.**") < markdown.index("### References")
    assert section.markdown() == section.markdown(table="")  # methods.md as before


def test_notebook_06_puts_the_results_table_inside_the_methods_section() -> None:
    import json

    from helpers.core import paths

    cells = json.loads((paths.NOTEBOOKS_DIR / "06_report.ipynb").read_text())["cells"]
    code = "".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    assert "section.markdown(table=" in code
