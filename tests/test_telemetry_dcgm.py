"""DCGM exporter text -> GpuSample, and the fast Prometheus path agreeing with the reference."""

from __future__ import annotations

import math
import random
import string
from pathlib import Path

import pytest

from backend.telemetry.dcgm import INT32_BLANK, INT64_BLANK, GpuSample, parse_dcgm
from backend.telemetry.prometheus import (
    PromParseError,
    PromSample,
    base_name,
    parse_samples,
    parse_samples_fast,
    parse_samples_reference,
)

# Verbatim copies of ../shared/samples/*.prom (upstream NVIDIA/dcgm-exporter data), so the tests
# run on a fresh clone too; test_embedded_samples_are_verbatim checks them when that folder exists.
SHARED_SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "samples"
README_SAMPLE = (
    "# HELP DCGM_FI_DEV_SM_CLOCK SM clock frequency (in MHz).\n"
    "# TYPE DCGM_FI_DEV_SM_CLOCK gauge\n"
    "# HELP DCGM_FI_DEV_MEM_CLOCK Memory clock frequency (in MHz).\n"
    "# TYPE DCGM_FI_DEV_MEM_CLOCK gauge\n"
    "# HELP DCGM_FI_DEV_MEMORY_TEMP Memory temperature (in C).\n"
    "# TYPE DCGM_FI_DEV_MEMORY_TEMP gauge\n"
    'DCGM_FI_DEV_SM_CLOCK{gpu="0", UUID="GPU-604ac76c-d9cf-fef3-62e9-d92044ab6e52",container="",namespace="",pod=""} 139\n'
    'DCGM_FI_DEV_MEM_CLOCK{gpu="0", UUID="GPU-604ac76c-d9cf-fef3-62e9-d92044ab6e52",container="",namespace="",pod=""} 405\n'
    'DCGM_FI_DEV_MEMORY_TEMP{gpu="0", UUID="GPU-604ac76c-d9cf-fef3-62e9-d92044ab6e52",container="",namespace="",pod=""} 9223372036854775794\n'
)
SERVER_TEST_SAMPLE = (
    "# HELP TEST_METRIC \n"
    "# TYPE TEST_METRIC gauge\n"
    'TEST_METRIC{gpu="0",UUID="GPU-00000000-0000-0000-0000-000000000000",pci_bus_id="",device="nvidia0",modelName="NVIDIA T400 4GB",hostname="testhost"} 42\n'
)
UUID = "GPU-604ac76c-d9cf-fef3-62e9-d92044ab6e52"


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("dcgm-exporter-readme-sample.prom", README_SAMPLE),
        ("dcgm-exporter-server-test-sample.prom", SERVER_TEST_SAMPLE),
    ],
)
def test_embedded_samples_are_verbatim(name: str, text: str) -> None:
    path = SHARED_SAMPLES / name
    if not path.exists():
        pytest.skip(f"{path} is not next to this checkout")
    assert path.read_text() == text


def one(gpus: list[GpuSample]) -> GpuSample:
    assert len(gpus) == 1, gpus
    return gpus[0]


def exporter_text(
    node: str, gpus: int, rng: random.Random, *, host_label: str = "Hostname", extra: str = ""
) -> str:
    """Text shaped like dcgm-exporter's: HELP/TYPE per field, the same label set per GPU."""
    fields = {
        "DCGM_FI_DEV_GPU_UTIL": "gauge",
        "DCGM_FI_DEV_FB_USED": "gauge",
        "DCGM_FI_DEV_FB_FREE": "gauge",
        "DCGM_FI_DEV_POWER_USAGE": "gauge",
        "DCGM_FI_DEV_GPU_TEMP": "gauge",
        "DCGM_FI_DEV_XID_ERRORS": "gauge",
        "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION": "counter",
        "DCGM_FI_PROF_GR_ENGINE_ACTIVE": "gauge",
    }
    lines = []
    for field, kind in fields.items():
        lines += [f"# HELP {field} Some help text, (in units).", f"# TYPE {field} {kind}"]
        for gpu in range(gpus):
            pod = f"w-{gpu}" if gpu % 2 else ""
            labels = (
                f'gpu="{gpu}", UUID="GPU-{node}-{gpu}",pci_bus_id="00000000:{gpu:02X}:00.0",'
                f'device="nvidia{gpu}",modelName="NVIDIA H100 80GB HBM3",{host_label}="{node}",'
                f'container="{pod and "main"}",namespace="{pod and "team-a"}",pod="{pod}"{extra}'
            )
            value = rng.choice(
                [f"{rng.uniform(0, 100):.3f}", str(rng.randrange(1000)), "9223372036854775794"]
            )
            lines.append(f"{field}{{{labels}}} {value}")
    return "\n".join(lines) + "\n"


# -- the real upstream samples -------------------------------------------------------------------


def test_readme_sample_values_sentinel_and_empty_pod_labels() -> None:
    gpu = one(parse_dcgm(README_SAMPLE, now=100.0))
    assert gpu.uuid == UUID
    assert gpu.gpu == 0
    assert gpu.sm_clock_mhz == 139
    assert gpu.memory_temperature_c is None  # 9223372036854775794: DCGM "blank"
    assert (gpu.pod, gpu.namespace, gpu.container) == (None, None, None)  # "" -> None
    assert gpu.node is None  # no host label and no scrape node
    assert gpu.sampled_at == 100.0


def test_readme_sample_takes_the_scrape_targets_node_without_host_label() -> None:
    assert one(parse_dcgm(README_SAMPLE, node="gpu-node-7")).node == "gpu-node-7"


def test_server_test_sample_lower_case_hostname_and_identity() -> None:
    gpu = one(parse_dcgm(SERVER_TEST_SAMPLE, node="ignored"))
    assert gpu.uuid == "GPU-00000000-0000-0000-0000-000000000000"
    assert gpu.node == "testhost"
    assert gpu.model_name == "NVIDIA T400 4GB"
    assert gpu.device == "nvidia0"
    assert gpu.pci_bus_id is None  # ""
    assert gpu.utilization is None  # TEST_METRIC is not a field we know: ignored


def test_upper_case_hostname_of_older_exporters() -> None:
    text = SERVER_TEST_SAMPLE.replace("hostname=", "Hostname=")
    assert one(parse_dcgm(text)).node == "testhost"


@pytest.mark.parametrize("text", [README_SAMPLE, SERVER_TEST_SAMPLE])
def test_real_samples_take_the_fast_path_and_match_the_reference(text: str) -> None:
    fast = parse_samples_fast(text)
    assert fast is not None
    assert normalised(fast) == normalised(parse_samples_reference(text))
    assert parse_dcgm(text, now=1.0) == parse_dcgm(text, now=1.0, fast=False)


# -- fields, units, sentinels ----------------------------------------------------------------------


def test_all_fields_units_and_pod_labels() -> None:
    labels = f'gpu="3",UUID="{UUID}",Hostname="n1",pod="llm-0",namespace="team-a",container="srv"'
    text = "\n".join(
        f"{name}{{{labels}}} {value}"
        for name, value in [
            ("DCGM_FI_DEV_GPU_UTIL", "87"),
            ("DCGM_FI_PROF_GR_ENGINE_ACTIVE", "0.75"),
            ("DCGM_FI_DEV_FB_USED", "40960"),
            ("DCGM_FI_DEV_FB_FREE", "40000"),
            ("DCGM_FI_DEV_POWER_USAGE", "612.5"),
            ("DCGM_FI_DEV_GPU_TEMP", "71"),
            ("DCGM_FI_DEV_MEMORY_TEMP", "65"),
            ("DCGM_FI_DEV_SM_CLOCK", "1980"),
            ("DCGM_FI_DEV_XID_ERRORS", "79"),
            ("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "123456789012"),
            ("DCGM_FI_DEV_SOMETHING_NEW", "5"),
            ("go_goroutines", "12"),
        ]
    )
    gpu = one(parse_dcgm(text))
    assert (gpu.gpu, gpu.node) == (3, "n1")
    assert gpu.utilization == 87.0
    assert gpu.engine_active == 0.75
    assert (gpu.fb_used_mib, gpu.fb_free_mib) == (40960.0, 40000.0)
    assert gpu.power_watts == 612.5
    assert (gpu.temperature_c, gpu.memory_temperature_c) == (71.0, 65.0)
    assert gpu.sm_clock_mhz == 1980.0
    assert gpu.last_xid == 79 and isinstance(gpu.last_xid, int)
    assert gpu.energy_mj == 123456789012.0
    assert (gpu.pod, gpu.namespace, gpu.container) == ("llm-0", "team-a", "srv")


@pytest.mark.parametrize(
    "value",
    ["NaN", "+Inf", "-Inf", str(INT32_BLANK), str(INT32_BLANK + 2), "9223372036854775794"],
)
def test_blank_sentinels_and_non_finite_values_become_none(value: str) -> None:
    text = f'DCGM_FI_DEV_GPU_UTIL{{gpu="0",UUID="{UUID}"}} {value}\n'
    assert one(parse_dcgm(text)).utilization is None
    assert one(parse_dcgm(text, fast=False)).utilization is None


def test_energy_counter_keeps_large_values_below_the_int64_blank() -> None:
    text = (
        "# TYPE DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION counter\n"
        f'DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{{gpu="0",UUID="{UUID}"}} 3000000000\n'
    )
    # the reference parser renames counter samples to *_total; both paths must still see it
    assert one(parse_dcgm(text, fast=False)).energy_mj == 3e9
    assert one(parse_dcgm(text)).energy_mj == 3e9
    blank = text.replace("3000000000", str(INT64_BLANK))
    assert one(parse_dcgm(blank)).energy_mj is None


def test_mig_instances_are_samples_of_their_own() -> None:
    base = f'gpu="0",UUID="{UUID}",device="nvidia0",modelName="NVIDIA A100-SXM4-40GB",Hostname="n"'
    text = (
        f'DCGM_FI_DEV_FB_USED{{{base},GPU_I_PROFILE="1g.5gb",GPU_I_ID="7"}} 100\n'
        f'DCGM_FI_DEV_FB_USED{{{base},GPU_I_PROFILE="3g.20gb",GPU_I_ID="1",pod="p",'
        f'namespace="ns",container="c"}} 2000\n'
        f'DCGM_FI_PROF_GR_ENGINE_ACTIVE{{{base},GPU_I_PROFILE="1g.5gb",GPU_I_ID="7"}} 0.25\n'
    )
    gpus = {gpu.uuid: gpu for gpu in parse_dcgm(text)}
    assert set(gpus) == {f"{UUID}/7", f"{UUID}/1"}
    small, big = gpus[f"{UUID}/7"], gpus[f"{UUID}/1"]
    assert (small.mig_profile, small.mig_instance, small.fb_used_mib) == ("1g.5gb", "7", 100.0)
    assert small.engine_active == 0.25 and small.pod is None
    assert (big.mig_profile, big.fb_used_mib, big.pod, big.namespace) == (
        "3g.20gb",
        2000,
        "p",
        "ns",
    )


def test_help_and_type_without_samples_give_no_gpus() -> None:
    assert (
        parse_dcgm(
            "# HELP DCGM_FI_DEV_GPU_UTIL GPU utilization (in %).\n"
            "# TYPE DCGM_FI_DEV_GPU_UTIL gauge\n"
        )
        == []
    )
    assert parse_dcgm("") == []


def test_series_without_gpu_identity_are_skipped() -> None:
    text = 'DCGM_FI_DEV_GPU_UTIL{nvswitch="0"} 5\nprocess_open_fds 9\n'
    assert parse_dcgm(text) == []


def test_without_uuid_the_gpu_index_on_its_host_identifies_it() -> None:
    text = 'DCGM_FI_DEV_GPU_UTIL{gpu="2",hostname="n9"} 5\n'
    assert one(parse_dcgm(text)).uuid == "n9/2"


@pytest.mark.parametrize(
    "garbage",
    [
        "<html><body>502 Bad Gateway</body></html>",
        '{"kind": "Status", "code": 403}',
        'DCGM_FI_DEV_GPU_UTIL{gpu="0" 5',
        'DCGM_FI_DEV_GPU_UTIL{gpu="0"} five',
        "# TYPE DCGM_FI_DEV_GPU_UTIL nonsense\n",
    ],
)
def test_garbage_is_a_clear_parse_error(garbage: str) -> None:
    with pytest.raises(PromParseError, match="not Prometheus text format"):
        parse_dcgm(garbage)


def test_label_values_with_spaces_after_commas_and_escapes() -> None:
    text = f'DCGM_FI_DEV_GPU_UTIL{{gpu="1", UUID="{UUID}", modelName="A \\"quoted\\" name"}} 9\n'
    assert parse_samples_fast(text) is None  # escapes: left to the reference parser
    gpu = one(parse_dcgm(text))
    assert (gpu.gpu, gpu.model_name, gpu.utilization) == (1, 'A "quoted" name', 9.0)


# -- fast path == reference -----------------------------------------------------------------------


def normalised(samples: list[PromSample]) -> list[tuple[str, dict[str, str], str]]:
    """Comparable samples: counter renaming undone, NaN made equal to itself."""
    return [
        (base_name(s.name), dict(s.labels), "nan" if math.isnan(s.value) else repr(s.value))
        for s in samples
    ]


def test_fast_path_matches_reference_on_generated_exporter_text() -> None:
    rng = random.Random(7)
    for index in range(20):
        host = "hostname" if index % 2 else "Hostname"
        text = exporter_text(f"node-{index}", 8, rng, host_label=host)
        fast = parse_samples_fast(text)
        assert fast is not None
        assert normalised(fast) == normalised(parse_samples_reference(text))
        assert parse_dcgm(text, now=1.0) == parse_dcgm(text, now=1.0, fast=False)


MUTATIONS = [
    lambda line: line.replace('"', '\\"', 1),
    lambda line: line.replace(",", ",,", 1),
    lambda line: line.replace("=", " = ", 1),
    lambda line: line.replace("}", '} # {trace_id="1"} 1', 1),
    lambda line: line.replace(" ", "\t"),
    lambda line: line + " 1700000000000",
    lambda line: line + " 1 2",
    lambda line: line.replace('gpu="', '__name__="x",gpu="', 1),
    lambda line: line.replace('gpu="', 'gpu="1",gpu="', 1),
    lambda line: line.replace("}", ",}", 1),
    lambda line: line.replace("{", "{ ", 1),
    lambda line: line.rsplit(" ", 1)[0] + " 1_000",
    lambda line: line.rsplit(" ", 1)[0] + " nan",
    lambda line: line.rsplit(" ", 1)[0] + " -Inf",
    lambda line: line.rsplit(" ", 1)[0] + " 1e3",
    lambda line: line.rsplit(" ", 1)[0] + " .5",
    lambda line: line.rsplit(" ", 1)[0] + " 0x10",
    lambda line: line.rsplit(" ", 1)[0] + "  7",
    lambda line: line[: len(line) // 2],
    lambda line: "# " + line,
    lambda line: "#  TYPE x gauge",
    lambda line: "# TYPE _total counter",
    lambda line: "# TYPE x counter extra",
    lambda line: "# HELP x\tdoc",
    lambda line: "  " + line + "\r",
    lambda line: line.replace("DCGM", "dcgm:", 1),
    lambda line: line.replace("DCGM", "1DCGM", 1),
    lambda line: line.replace('modelName="', 'modelName="ü {x} ', 1),
]


def test_fast_path_never_disagrees_with_reference_on_mutated_text() -> None:
    """Random unusual lines: the fast path either declines (None) or agrees exactly."""
    rng = random.Random(11)
    declined = agreed = 0
    for _ in range(300):
        lines = exporter_text("n", 2, rng).splitlines()
        for _ in range(rng.randrange(1, 3)):
            at = rng.randrange(len(lines))
            lines[at] = rng.choice(MUTATIONS)(lines[at])
        text = "\n".join(lines)
        try:
            expected = normalised(parse_samples_reference(text))
        except PromParseError:
            expected = None
        fast = parse_samples_fast(text)
        if fast is None:
            declined += 1
        else:
            agreed += 1
            assert normalised(fast) == expected, text
        if expected is None:
            with pytest.raises(PromParseError):
                parse_samples(text)
        else:
            assert normalised(parse_samples(text)) == expected
    assert declined and agreed  # both branches were exercised


def test_random_garbage_never_crashes_and_both_paths_agree() -> None:
    """Corrupted exporter text: a list of GPUs or a PromParseError, the same on both paths."""
    rng = random.Random(3)
    alphabet = string.printable + 'ü{}"\\=,#'
    base = list(f'DCGM_FI_DEV_GPU_UTIL{{gpu="0", UUID="{UUID}",Hostname="n"}} 5\n# TYPE x gauge\n')
    for attempt in range(2000):
        if attempt % 2:
            text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 60)))
        else:
            chars = list(base)
            for _ in range(rng.randrange(1, 4)):
                chars[rng.randrange(len(chars))] = rng.choice(alphabet)
            text = "".join(chars)
        outcomes: list[object] = []
        for fast in (True, False):
            try:
                outcomes.append(parse_dcgm(text, now=1.0, fast=fast))
            except PromParseError:
                outcomes.append("error")
        assert outcomes[0] == outcomes[1], text  # (NaN never reaches a GpuSample)
