from ops.report.contract import compare


def _params(label="churned", **features):
    feats = features or {"a": {"type": "int", "min": 0, "max": 100}}
    return {"schema": {"id_column": "id", "time_column": "t", "label": label, "features": feats}}


def test_label_change_is_not_comparable():
    diff = compare(_params(), _params(label="diagnosis"))
    assert not diff.comparable
    assert "label churned -> diagnosis" in diff.reasons


def test_added_feature_is_not_comparable():
    head = _params(a={"type": "int", "min": 0, "max": 100}, b={"type": "float"})
    diff = compare(_params(), head)
    assert not diff.comparable and diff.added == ("b",)
    assert "1 -> 2 features (1 added, 0 removed)" in diff.summary(1, 2)


def test_type_change_is_not_comparable():
    diff = compare(_params(), _params(a={"type": "float", "min": 0, "max": 100}))
    assert not diff.comparable and diff.retyped == ("a (int -> float)",)


def test_range_widening_alone_stays_comparable_but_is_listed():
    diff = compare(_params(), _params(a={"type": "int", "min": 0, "max": 120}))
    assert diff.comparable
    assert diff.changed == ("a (max 100 -> 120)",)
