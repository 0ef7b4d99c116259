"""The notebook contract is enforced: each committed notebook keeps it, and the checker
fails a notebook that breaks any one rule (so this test can fail)."""

import nbformat
import pytest

from helpers.notebooks import check_notebook, course_notebooks, strip_outputs

NOTEBOOKS = course_notebooks()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_committed_notebook_keeps_the_contract(path):
    assert check_notebook(path) == []


def good_notebook():
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    params = nbformat.v4.new_code_cell("EPOCHS = 1")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        nbformat.v4.new_markdown_cell("# A title\n\n## What you will learn\n\n- this"),
        nbformat.v4.new_markdown_cell("## Setup"),
        params,
        nbformat.v4.new_code_cell("assert EPOCHS == 1"),
        nbformat.v4.new_markdown_cell("## Summary\n\n## Exercises"),
    ]
    return nb


def write(tmp_path, nb, name="07_example.ipynb"):
    path = tmp_path / name
    nbformat.write(nb, str(path))
    return path


def test_a_good_notebook_passes(tmp_path):
    assert check_notebook(write(tmp_path, good_notebook())) == []


def test_outputs_fail_and_strip_fixes_them(tmp_path):
    nb = good_notebook()
    nb.cells[3].outputs = [nbformat.v4.new_output("stream", name="stdout", text="hi\n")]
    nb.cells[3].execution_count = 3
    path = write(tmp_path, nb)
    problems = check_notebook(path)
    assert any("holds outputs" in p for p in problems)
    assert any("execution count" in p for p in problems)
    assert strip_outputs(path) is True
    assert check_notebook(path) == []
    assert strip_outputs(path) is False


def test_missing_parameters_cell_fails(tmp_path):
    nb = good_notebook()
    nb.cells[2].metadata["tags"] = []
    assert any("tagged 'parameters'" in p for p in check_notebook(write(tmp_path, nb)))


def test_two_parameters_cells_fail(tmp_path):
    nb = good_notebook()
    nb.cells[3].metadata["tags"] = ["parameters"]
    assert any("keep exactly one" in p for p in check_notebook(write(tmp_path, nb)))


@pytest.mark.parametrize("section", ["What you will learn", "Setup", "Summary", "Exercises"])
def test_each_missing_section_fails(tmp_path, section):
    nb = good_notebook()
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = cell.source.replace(f"## {section}", "## Something else")
    assert f"no '{section}' section" in check_notebook(write(tmp_path, nb))


def test_bad_name_no_kernelspec_and_no_assert_fail(tmp_path):
    nb = good_notebook()
    del nb.metadata["kernelspec"]
    nb.cells[3].source = "print(EPOCHS)"
    problems = check_notebook(write(tmp_path, nb, name="Example.ipynb"))
    assert any("is not NN_topic" in p for p in problems)
    assert any("kernelspec" in p for p in problems)
    assert any("asserts anything" in p for p in problems)


def test_sections_out_of_order_fail(tmp_path):
    nb = good_notebook()
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = (
                cell.source.replace("## Summary", "## TMP")
                .replace("## Exercises", "## Summary")
                .replace("## TMP", "## Exercises")
            )
    assert any("out of order" in p for p in check_notebook(write(tmp_path, nb)))


def test_too_much_code_fails(tmp_path):
    nb = good_notebook()
    nb.cells.append(nbformat.v4.new_code_cell("\n".join(f"x{i} = {i}" for i in range(301))))
    assert any("lines of code (limit 300)" in p for p in check_notebook(write(tmp_path, nb)))
