import numpy as np
import pytest

from diffusets_core.text.patient import decode_patient, encode_patient


def test_paper_mode_raw_values_in_reference_order():
    x = encode_patient(["M", "F"], [50, 71.5], [80, 60], mode="paper")
    assert x.dtype == np.float32 and x.shape == (2, 3)
    np.testing.assert_array_equal(x, [[1, 50, 80], [0, 71.5, 60]])


def test_normalized_default():
    x = encode_patient("M", 50, 75)
    assert x.shape == (1, 3) and x.dtype == np.float32
    np.testing.assert_allclose(x, [[1, 0, 0]])
    y = encode_patient(["F", "m", "female"], [90, 10, 50], 125)
    np.testing.assert_allclose(y, [[-1, 2, 2], [1, -2, 2], [-1, 0, 2]])
    d = decode_patient(y)
    assert d["sex"] == ["F", "M", "F"]
    np.testing.assert_allclose(d["age"], [90, 10, 50], atol=1e-4)
    np.testing.assert_allclose(d["hr"], [125] * 3, atol=1e-4)


@pytest.mark.parametrize(
    "kw, field, value",
    [
        (dict(sex="X", age=50, hr=70), "sex", "'X'"),
        (dict(sex=1, age=50, hr=70), "sex", "1"),
        (dict(sex="M", age=130, hr=70), "age", "130"),
        (dict(sex="M", age=-1, hr=70), "age", "-1"),
        (dict(sex="M", age=float("nan"), hr=70), "age", "nan"),
        (dict(sex="M", age=50, hr=10), "hr", "10"),
        (dict(sex="M", age=50, hr=350), "hr", "350"),
        (dict(sex="M", age="old", hr=70), "age", "'old'"),
    ],
)
def test_validation_names_field_and_value(kw, field, value):
    with pytest.raises(ValueError) as ei:
        encode_patient(**kw)
    msg = str(ei.value)
    assert msg.startswith(field) and value in msg


def test_validation_position_and_lengths():
    with pytest.raises(ValueError, match=r"hr must be within 20-300 bpm, got 400.0 at position 1"):
        encode_patient(["M", "F"], [40, 50], np.array([70.0, 400.0]))
    with pytest.raises(ValueError, match="age has 2 values"):
        encode_patient(["M", "F", "M"], [40, 50], 70)
    with pytest.raises(ValueError, match="mode"):
        encode_patient("M", 50, 70, mode="raw")
