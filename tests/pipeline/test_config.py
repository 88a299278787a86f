import pytest

from mlcore.errors import PipelineError
from pipeline.config import load_params, parse_params
from tests.support.factories import raw_params


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda r: r["tune"].update(n_trials="many"), "tune.n_trials"),
        (lambda r: r["tune"].pop("metric"), "tune.metric"),
        (lambda r: r["tune"].update(metric="accuracy_at_k"), "tune.metric"),
        (lambda r: r["prepare"].update(test_days=-3), "prepare.test_days"),
        (lambda r: r["evaluate"].update(thresold=0.4), "evaluate.thresold"),
        (lambda r: r["schema"]["features"]["contract"].pop("allowed"), "schema.features.contract"),
        (lambda r: r["tune"]["search_space"]["max_iter"].update(low=500), "tune.search_space.max_iter"),
        (lambda r: r.pop("model"), "model"),
    ],
)
def test_bad_params_name_the_key(tmp_path, mutate, expected):
    raw = raw_params()
    mutate(raw)
    import yaml

    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(PipelineError) as err:
        load_params(path)
    message = str(err.value)
    assert message.startswith(f"{path}: {expected}")
    assert "\n" not in message


def test_unreadable_params_file_is_a_clear_error(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("tune: [unclosed\n")
    with pytest.raises(PipelineError, match="not valid YAML"):
        load_params(path)
    with pytest.raises(PipelineError, match="file not found"):
        load_params(tmp_path / "absent.yaml")


def test_the_project_section_is_required_and_typed():
    raw = raw_params()
    del raw["project"]
    with pytest.raises(PipelineError, match="project: Field required"):
        parse_params(raw)
    raw = raw_params()
    raw["project"]["slug"] = "acme"
    with pytest.raises(PipelineError, match=r"project\.slug: Extra inputs are not permitted"):
        parse_params(raw)
