"""The carrier seam: what Create does with a hook's refusal, bug, and programs it runs."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest

from inclavare.errors import InclavareError
from inclavare.shim import carrier
from inclavare.shim.container import run_carrier
from inclavare.shim.errors import FAILED_PRECONDITION, InvalidArgument
from inclavare.shim.options import ShimOptions
from inclavare.shim.reaper import Reaper


@pytest.fixture
def bundle(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"process": {"env": ["RUNE_CARRIER=wasm"]}}))
    return str(tmp_path)


def test_the_hook_is_the_carrier_library_and_leaves_a_plain_container_alone(tmp_path):
    assert carrier.load() is carrier.carrier_prepare
    text = json.dumps({"process": {"args": ["sh"], "env": ["PATH=/bin"]}, "root": {"path": "rootfs"}})
    (tmp_path / "config.json").write_text(text)
    run_carrier(carrier.load(), str(tmp_path), ShimOptions(), Reaper(lambda p, s: None))
    assert (tmp_path / "config.json").read_text() == text


def test_an_unknown_carrier_is_refused_in_one_line(tmp_path):
    spec = {"process": {"args": ["/app/x"], "env": ["RUNE_CARRIER=occlum"]}, "root": {"path": "rootfs"}}
    (tmp_path / "config.json").write_text(json.dumps(spec))
    with pytest.raises(carrier.CarrierError) as err:
        run_carrier(carrier.load(), str(tmp_path), ShimOptions(), Reaper(lambda p, s: None))
    assert err.value.code == FAILED_PRECONDITION
    assert str(err.value).startswith("carrier: ")
    assert "occlum" in str(err.value)
    assert "\n" not in str(err.value)


def test_the_empty_carrier_changes_nothing(bundle):
    run_carrier(carrier.empty_carrier, bundle, ShimOptions(), Reaper(lambda p, s: None))
    with open(f"{bundle}/config.json") as f:
        assert json.load(f) == {"process": {"env": ["RUNE_CARRIER=wasm"]}}


def test_the_hook_gets_bundle_spec_and_options(bundle):
    seen = []
    opts = ShimOptions()
    run_carrier(lambda b, spec, o: seen.append((b, spec, o)), bundle, opts, Reaper(lambda p, s: None))
    assert seen == [(bundle, {"process": {"env": ["RUNE_CARRIER=wasm"]}}, opts)]


def test_a_refusal_is_one_line_for_containerd(bundle):
    def refuse(b, spec, o):
        raise InclavareError("signing server refused the caller: 403")

    with pytest.raises(carrier.CarrierError) as err:
        run_carrier(refuse, bundle, ShimOptions(), Reaper(lambda p, s: None))
    assert (str(err.value), err.value.code) == ("carrier: signing server refused the caller: 403", FAILED_PRECONDITION)


def test_a_carrier_bug_is_an_internal_error_line(bundle):
    with pytest.raises(carrier.CarrierError, match=r"^carrier: internal error: KeyError: 'x'$"):
        run_carrier(lambda b, s, o: {}["x"], bundle, ShimOptions(), Reaper(lambda p, s: None))


def test_a_carrier_may_use_subprocess(bundle):
    codes = []
    run_carrier(lambda b, s, o: codes.append(subprocess.run(["sh", "-c", "exit 5"]).returncode), bundle,
                ShimOptions(), Reaper(lambda p, s: None))  # fmt: skip
    assert codes == [5]


def test_a_bundle_without_a_readable_spec(tmp_path):
    with pytest.raises(InvalidArgument, match=r"config\.json: .*No such file"):
        run_carrier(carrier.empty_carrier, str(tmp_path), ShimOptions(), Reaper(lambda p, s: None))


def test_the_carriers_log_lines_are_the_shims(capfd):
    """What the carrier logs (the measurement it had signed, mock signing) reaches containerd's log as
    the shim's own lines, once per record however many Creates set it up."""
    from inclavare.shim.carrierlog import CARRIER_LOGGER, ShimLogHandler, log_to_shim

    logger = logging.getLogger(CARRIER_LOGGER)
    try:
        log_to_shim()
        log_to_shim()
        logger.info("carrier wasm: enclave %s", "ab" * 32)
        logger.debug("not at the shim's level")
        logger.warning('MOCK SIGNING with "node" key')
        lines = capfd.readouterr().err.splitlines()
        assert [line.split(" ", 1)[1] for line in lines] == [
            f'level=info msg="carrier wasm: enclave {"ab" * 32}"',
            'level=warning msg="MOCK SIGNING with \\"node\\" key"',
        ]
        assert all(line.startswith('time="') for line in lines)
    finally:
        for handler in [h for h in logger.handlers if isinstance(h, ShimLogHandler)]:
            logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)


def test_a_misspelt_carrier_variable_still_reaches_the_carrier_and_is_refused(tmp_path):
    spec = {"process": {"args": ["/app/x"], "env": ["RUNE_CARIER=wasm"]}, "root": {"path": "rootfs"}}
    (tmp_path / "config.json").write_text(json.dumps(spec))
    with pytest.raises(carrier.CarrierError, match=r"^carrier: process\.env RUNE_CARIER: .*did you mean RUNE_CARRIER"):
        run_carrier(carrier.load(), str(tmp_path), ShimOptions(), Reaper(lambda p, s: None))


def test_a_container_without_a_carrier_does_not_load_the_carrier_library(tmp_path):
    """~0.1 s of imports on every pod's path otherwise (bench/shim.py)."""
    spec = {"process": {"args": ["sh"], "env": ["PATH=/bin", "ENCLAVE_TYPE=software"]},
            "annotations": {"io.kubernetes.cri.sandbox-id": "x"}, "root": {"path": "rootfs"}}  # fmt: skip
    (tmp_path / "config.json").write_text(json.dumps(spec))
    code = (
        "import sys\n"
        "from inclavare.shim import carrier\n"
        "from inclavare.shim.container import run_carrier\n"
        "from inclavare.shim.options import ShimOptions\n"
        "from inclavare.shim.reaper import Reaper\n"
        f"run_carrier(carrier.load(), {str(tmp_path)!r}, ShimOptions(), Reaper(lambda p, s: None))\n"
        "print(sorted(m for m in sys.modules if m.startswith('inclavare.carrier')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
