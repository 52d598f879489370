"""The DCAP pipeline against a synthetic PKI: revocation, every status convergence, QE and TDX module identity."""

from __future__ import annotations

import pytest

from inclavare.attestation import TcbStatus, VerificationFailed
from inclavare.attestation.hazmat.quote import parse_quote
from inclavare.attestation.verifiers import _dcap

from .synthetic_dcap import NOW, World

S = TcbStatus


def appraise(world: World) -> _dcap.DcapResult:
    quote, store, anchor = world.build()
    return _dcap.appraise(parse_quote(quote), store, NOW, anchor=anchor)


def test_a_clean_world_is_up_to_date() -> None:
    result = appraise(World())
    assert result.tcb.status == S.UP_TO_DATE
    assert result.tcb.advisory_ids == ("INTEL-SA-00000",)
    assert result.expired == ()
    assert appraise(World(tdx=True)).tcb.components == (
        ("platform", S.UP_TO_DATE),
        ("tdx_module", S.UP_TO_DATE),
        ("qe", S.UP_TO_DATE),
    )


def test_a_revoked_pck_is_revoked_and_always_rejected() -> None:
    result = appraise(World(revoke_pck=True))
    assert result.tcb.status == S.REVOKED
    with pytest.raises(VerificationFailed, match="sgx tcb: the PCK certificate is revoked by the PCK CRL"):
        _dcap.reject_revoked(result, "sgx")


def test_a_revoked_pck_ca_fails_the_chain() -> None:
    with pytest.raises(VerificationFailed, match="'Intel SGX PCK Platform CA' is revoked by the root CA CRL"):
        appraise(World(revoke_pck_ca=True))


@pytest.mark.parametrize(
    ("components", "pce", "status", "advisory"),
    [
        ([5] * 16, 10, S.UP_TO_DATE, "INTEL-SA-00000"),
        ([5] * 15 + [4], 10, S.OUT_OF_DATE, "INTEL-SA-00001"),  # one component below level 0
        ([5] * 16, 9, S.OUT_OF_DATE, "INTEL-SA-00001"),  # PCESVN below level 0
        ([9] * 16, 99, S.UP_TO_DATE, "INTEL-SA-00000"),  # above every level: the first (newest) matches
    ],
)
def test_tcb_level_selection(components: list[int], pce: int, status: TcbStatus, advisory: str) -> None:
    result = appraise(World(pck_components=components, pce_svn=pce))
    assert result.tcb.status == status
    assert result.tcb.advisory_ids == (advisory,)


def test_below_every_level_is_not_supported() -> None:
    with pytest.raises(VerificationFailed, match=r"no TCB level .* \(TCB not supported\)"):
        appraise(World(pck_components=[0] * 16))


@pytest.mark.parametrize(
    ("platform", "converged"),
    [
        ("UpToDate", S.OUT_OF_DATE),
        ("SWHardeningNeeded", S.OUT_OF_DATE),
        ("ConfigurationNeeded", S.OUT_OF_DATE_CONFIGURATION_NEEDED),
        ("ConfigurationAndSWHardeningNeeded", S.OUT_OF_DATE_CONFIGURATION_NEEDED),
        ("OutOfDate", S.OUT_OF_DATE),
    ],
)
def test_an_out_of_date_qe_converges(platform: str, converged: TcbStatus) -> None:
    world = World(levels=[([5] * 16, 10, platform)], qe_isv_svn=2)
    result = appraise(world)
    assert dict(result.tcb.components) == {"platform": S(platform), "qe": S.OUT_OF_DATE}
    assert result.tcb.status == converged


def test_revoked_levels_are_rejected() -> None:
    result = appraise(World(levels=[([5] * 16, 10, "Revoked")]))
    assert result.tcb.status == S.REVOKED
    with pytest.raises(VerificationFailed, match="TCB status is Revoked \\(platform\\)"):
        _dcap.reject_revoked(result, "sgx")
    result = appraise(World(qe_levels=[(4, "Revoked")]))
    with pytest.raises(VerificationFailed, match="TCB status is Revoked \\(qe\\)"):
        _dcap.reject_revoked(result, "sgx")


@pytest.mark.parametrize(
    ("world", "message"),
    [
        (World(qe_mrsigner=b"\xff" * 32), "QE MRSIGNER"),
        (World(qe_isv_svn=0), "QE ISVSVN 0 is below every QE identity TCB level"),
        (World(pce_id=b"\0\1"), "PCE-ID 0001 is not the PCK certificate's 0000"),
    ],
)
def test_identity_mismatches(world: World, message: str) -> None:
    with pytest.raises(VerificationFailed, match=message):
        appraise(world)


@pytest.mark.parametrize(
    ("module_levels", "tee_tcb_svn", "expected"),
    [
        ([(3, "UpToDate")], [3, 1], S.UP_TO_DATE),
        ([(4, "UpToDate"), (2, "OutOfDate")], [3, 1], S.OUT_OF_DATE),
        ([(4, "UpToDate"), (2, "Revoked")], [3, 1], S.REVOKED),
        ([(3, "UpToDate")], [0, 0], S.UP_TO_DATE),  # module version 0: no module identity, tdxModule only
    ],
)
def test_tdx_module_identity(module_levels: list, tee_tcb_svn: list[int], expected: TcbStatus) -> None:
    world = World(tdx=True, module_levels=module_levels, tee_tcb_svn=bytes(tee_tcb_svn + [0] * 14))
    assert appraise(world).tcb.status == expected


def test_tdx_module_problems_fail() -> None:
    with pytest.raises(VerificationFailed, match="TDX module SVN 0 is below every level of TDX_01"):
        appraise(World(tdx=True, tee_tcb_svn=bytes([0, 1] + [0] * 14)))
    with pytest.raises(VerificationFailed, match="no TDX module identity TDX_02"):
        appraise(World(tdx=True, tee_tcb_svn=bytes([3, 2] + [0] * 14)))


def test_tdx_components_are_compared_from_index_2_when_a_module_version_is_set() -> None:
    levels = [([5] * 16, 10, "UpToDate"), ([5] * 16, 10, "OutOfDate")]
    tdx = [[9, 9, 1] + [0] * 13, [0, 0, 0] + [0] * 13]  # level 0 needs TEE_TCB_SVN[2] >= 1
    world = World(tdx=True, levels=levels, tdx_components=tdx, tee_tcb_svn=bytes([3, 1, 0] + [0] * 13))
    assert appraise(world).tcb.status == S.OUT_OF_DATE
    world.tee_tcb_svn = bytes([3, 1, 1] + [0] * 13)  # components 0 and 1 (9, 9) are skipped
    assert appraise(world).tcb.status == S.UP_TO_DATE


@pytest.mark.parametrize(("version", "tdx"), [(4, False), (5, False), (5, True)])
def test_v4_and_v5_quotes_with_sgx_and_td_bodies(version: int, tdx: bool) -> None:
    quote, store, anchor = World(version=version, tdx=tdx).build()
    parsed = parse_quote(quote)
    assert (parsed.header.version, parsed.tee) == (version, "tdx" if tdx else "sgx")
    assert _dcap.appraise(parsed, store, NOW, anchor=anchor).tcb.status == S.UP_TO_DATE


def test_td15_relaunch_advice() -> None:
    """Module OutOfDate now, but TEE_TCB_SVN2 shows the latest module is loaded: relaunching the TD fixes it."""
    base = {"tdx": True, "version": 5, "module_levels": [(3, "UpToDate"), (1, "OutOfDate")]}
    stale = World(**base, tee_tcb_svn=bytes([2, 1] + [0] * 14), tee_tcb_svn2=bytes([2, 1] + [0] * 14))
    assert appraise(stale).tcb.status == S.OUT_OF_DATE
    fixed = World(**base, tee_tcb_svn=bytes([2, 1] + [0] * 14), tee_tcb_svn2=bytes([3, 1] + [0] * 14))
    assert appraise(fixed).tcb.status == S.TD_RELAUNCH_ADVISED
    config = World(**base, levels=[([5] * 16, 10, "ConfigurationNeeded")], tee_tcb_svn=bytes([2, 1] + [0] * 14),
                   tee_tcb_svn2=bytes([3, 1] + [0] * 14))  # fmt: skip
    assert appraise(config).tcb.status == S.TD_RELAUNCH_ADVISED_CONFIGURATION_NEEDED
