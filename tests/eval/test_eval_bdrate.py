"""BD-rate / BD-PSNR against published worked examples, plus properties and failure modes.

Published examples reproduced here:

* cubic (VCEG-M33): the two four-point curves of Bjøntegaard's VCEG-M33 with BD-SNR 0.800713 dB
  and BD-rate -13.261773 %, and the nine-point ETRO "barb512" curves with 0.072297 dB /
  -0.903450 %, both as asserted in the example of tbr/bjontegaard_cpp (a port of the ETRO Excel
  add-in that "complies with VCEG-M33"), https://github.com/tbr/bjontegaard_cpp/blob/master/example.cpp
* pchip (JCT-VC CTC): the two JCTVC-E137 test cases that Netflix's VMAF BD-rate calculator is
  validated against (python/test/bd_rate_calculator_test.py in Netflix/vmaf), BD-rate
  -0.465215420752807 % and -1.8779823450567612 % (VMAF reports fractions: -0.00465..., -0.01877...).
"""

from __future__ import annotations

import warnings

import pytest

from glocal_codec.eval.anchors import anchor_curve, published_anchors
from glocal_codec.eval.bdrate import (
    BDRateWarning,
    Curve,
    NoOverlapError,
    bd_psnr,
    bd_quality,
    bd_rate,
    compare,
)

# VCEG-M33 (rate kbit/s, PSNR dB)
M33_A = ([90.33, 181.03, 332.99, 547.79], [27.95, 31.17, 34.44, 38.11])
M33_B = ([127.1719, 186.14, 307.2924, 481.5588], [29.9286, 32.4165, 34.7013, 37.4561])
# ETRO barb512 (bpp, PSNR dB)
BARB_A = ([2.99899, 1.99884, 1.49673, 0.99707, 0.745941, 0.596436, 0.495148, 0.29425, 0.244049],
          [48.6681, 43.8357, 41.3982, 38.0124, 35.5122, 33.8673, 32.6658, 29.4505, 28.484])
BARB_B = ([2.997253, 1.968292, 1.472565, 0.994965, 0.748871, 0.58902, 0.499176, 0.296753, 0.249634],
          [48.5637, 43.7318, 41.2727, 38.0001, 35.6375, 33.9057, 32.8318, 29.6851, 28.8244])
# JCTVC-E137 test cases 1 and 2 (rate, PSNR dB)
E137_1 = (([108048.8736, 61279.976, 33905.6656, 18883.6928], [43.6471, 40.3953, 37.247, 34.2911]),
          ([108061.2784, 61299.9936, 33928.7472, 18910.912], [43.6768, 40.4232, 37.2761, 34.3147]),
          -0.465215420752807)
E137_2 = (([40433.8848, 7622.7456, 2394.488, 1017.6184], [37.5761, 35.3756, 33.8977, 32.0603]),
          ([40370.12, 7587.0024, 2390.0944, 1017.0984], [37.5982, 35.4025, 33.9194, 32.0822]),
          -1.8779823450567612)


@pytest.mark.parametrize("a, b, snr, rate", [(M33_A, M33_B, 0.800713, -13.261773),
                                             (BARB_A, BARB_B, 0.072297, -0.903450)])
def test_cubic_reproduces_vceg_m33_examples(a, b, snr, rate) -> None:
    assert bd_psnr(*a, *b, method="cubic") == pytest.approx(snr, abs=5e-7)
    assert bd_rate(*a, *b, method="cubic") == pytest.approx(rate, abs=5e-7)  # far inside 0.01 %


@pytest.mark.parametrize("case", [E137_1, E137_2])
def test_pchip_reproduces_jctvc_e137_examples(case) -> None:
    a, b, expected = case
    assert bd_rate(*a, *b, method="pchip") == pytest.approx(expected, abs=1e-9)
    assert bd_rate(*a, *b) == pytest.approx(expected, abs=1e-9)  # pchip is the default


@pytest.mark.parametrize("method", ["pchip", "cubic"])
def test_exact_properties(method: str) -> None:
    rate, q = M33_A
    assert bd_rate(rate, q, rate, q, method) == pytest.approx(0.0, abs=1e-12)
    # 25 % more bits at every quality is a BD-rate of exactly +25 %
    assert bd_rate(rate, q, [r * 1.25 for r in rate], q, method) == pytest.approx(25.0, abs=1e-9)
    # 0.5 dB better at every rate is a BD-PSNR of exactly +0.5 dB
    assert bd_quality(rate, q, rate, [v + 0.5 for v in q], method) == pytest.approx(0.5, abs=1e-9)
    # order of the points does not matter; swapping anchor and test flips the sign
    assert bd_rate(rate[::-1], q[::-1], *M33_B, method) == pytest.approx(bd_rate(*M33_A, *M33_B, method))
    assert bd_quality(*M33_B, *M33_A, method) == pytest.approx(-bd_quality(*M33_A, *M33_B, method), abs=1e-9)


def test_no_overlap_is_an_error_not_a_number() -> None:
    far = (M33_A[0], [v + 40 for v in M33_A[1]])
    with pytest.raises(NoOverlapError, match="do not overlap"):
        bd_rate(*M33_A, *far)
    r = compare(Curve.of(*M33_A), Curve.of(*far))
    assert r.bd_rate is None and any("do not overlap" in n for n in r.notes)


def test_small_overlap_warns() -> None:
    shifted = (M33_A[0], [v + 8 for v in M33_A[1]])  # quality ranges overlap 2.16 of 18.16 dB
    with pytest.warns(BDRateWarning, match="overlap in only"):
        bd_rate(*M33_A, *shifted)
    r = compare(Curve.of(*M33_A), Curve.of(*shifted))
    assert r.bd_rate is not None and r.overlap_quality < 0.5 and any("overlap in only" in n for n in r.notes)


def test_good_overlap_is_silent() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bd_rate(*M33_A, *M33_B)


def test_unusable_curves_are_rejected() -> None:
    with pytest.raises(ValueError, match="does not increase"):
        bd_rate([1, 2, 3, 4], [30, 32, 31, 35], *M33_B)
    with pytest.raises(ValueError, match="at least 4"):
        bd_rate([1, 2, 3], [30, 31, 32], [1, 2, 3], [30, 31, 32], method="cubic")
    with pytest.raises(ValueError, match="same rate"):
        bd_rate([1, 1, 3, 4], [30, 31, 32, 33], *M33_B)
    with pytest.raises(ValueError, match="positive"):
        bd_rate([0, 1, 3, 4], [30, 31, 32, 33], *M33_B)
    with pytest.raises(ValueError, match="unknown BD method"):
        bd_rate(*M33_A, *M33_B, method="akima")  # type: ignore[arg-type]


def test_published_anchors_ship_with_sources() -> None:
    anchors = published_anchors()
    for name in ("vtm", "bpg", "av1", "hm", "bmshj2018-hyperprior", "mbt2018", "cheng2020-anchor"):
        a = anchors[name]
        assert a.url.startswith("https://github.com/InterDigitalInc/CompressAI/") and a.description
        assert list(a.bpp) == sorted(a.bpp) and len(a.bpp) == len(a.psnr) >= 4
    # learned codecs beat the hyperprior's reference and VTM beats BPG: sanity of the data
    assert bd_rate(*_pts("bpg"), *_pts("vtm")) < -10
    assert bd_rate(*_pts("bmshj2018-hyperprior"), *_pts("cheng2020-anchor")) < -10
    ms = anchor_curve("vtm", "ms_ssim_db")
    assert all(5 < v < 30 for v in ms.quality)


def _pts(name: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    c = anchor_curve(name)
    return c.rate, c.quality


def test_anchor_numbers_match_the_shared_copy(data_dir) -> None:
    import json

    src = json.loads((data_dir / "anchors" / "kodak" / "vtm.json").read_text())["results"]
    a = published_anchors()["vtm"]
    assert list(a.bpp) == sorted(src["bpp"]) and list(a.psnr) == sorted(src["psnr-rgb"])
