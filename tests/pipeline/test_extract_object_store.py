"""`extract` over object-store files (s3://) through DuckDB and fsspec (s3fs), against a local S3-compatible
server (moto) on 127.0.0.1 started by the test. A guard fails any connection to another address."""

import itertools
import socket

import pandas as pd
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import yaml

from demo.generate import generate_month, month_range, write_month
from mlcore.errors import PipelineError
from mlcore.io import read_json
from pipeline.config import parse_params
from pipeline.extract import extract_snapshot, main
from pipeline.warehouse import open_warehouse
from tests.support.paths import TEST_PARAMS

_buckets = itertools.count()


@pytest.fixture(scope="module")
def s3_endpoint():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def bucket(s3_endpoint, monkeypatch, tmp_path):
    """A fresh bucket; AWS settings that can reach only the local server, as a user would set them for theirs."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    env = {
        "AWS_ACCESS_KEY_ID": "test-key",
        "AWS_SECRET_ACCESS_KEY": "test-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_S3": s3_endpoint,
        "AWS_EC2_METADATA_DISABLED": "true",  # no credential lookup on the network
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    connect = socket.socket.connect

    def loopback_only(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in ("127.0.0.1", "::1"):
            raise AssertionError(f"the test tried to connect to {address}")
        return connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", loopback_only)
    import boto3

    client = boto3.client("s3", endpoint_url=s3_endpoint)
    name = f"warehouse-{next(_buckets)}"
    client.create_bucket(Bucket=name)
    return client, name


@pytest.fixture(scope="module")
def local_files(tmp_path_factory):
    """Three generated months of 150 rows, as Parquet and as CSV files."""
    root = tmp_path_factory.mktemp("files")
    for month in month_range("2024-01", 3):
        write_month(generate_month(month, 150, 5), root / f"{month}.parquet")
        pacsv.write_csv(pq.read_table(root / f"{month}.parquet"), root / f"{month}.csv")
    return root


def _params_file(tmp_path, files):
    raw = yaml.safe_load(TEST_PARAMS.read_text())
    raw["warehouse"]["files"] = files
    raw["extract"]["window_days"] = 60
    raw["extract"]["chunk_rows"] = 100
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _extract_cli(params, tmp_path, name):
    out, info = tmp_path / f"{name}.parquet", tmp_path / f"{name}.json"
    assert main(["--params", str(params), "--out", str(out), "--info", str(info)]) == 0
    return out.read_bytes(), read_json(info)


@pytest.mark.parametrize("suffix", ["parquet", "csv"])
def test_object_store_files_give_the_snapshot_of_the_same_local_files(bucket, local_files, tmp_path, suffix):
    client, name = bucket
    for path in sorted(local_files.glob(f"*.{suffix}")):
        client.upload_file(str(path), name, f"events/{path.name}")
    remote = _extract_cli(_params_file(tmp_path, f"s3://{name}/events/*.{suffix}"), tmp_path, "remote")
    local = _extract_cli(_params_file(tmp_path, str(local_files / "*.parquet")), tmp_path, "local")
    assert remote == local
    assert remote[1]["rows"] > 100  # more than one chunk travelled
    snapshot = pd.read_parquet(tmp_path / "remote.parquet")
    assert snapshot["event_time"].min() >= pd.Timestamp(remote[1]["window_start"])


def test_no_object_matching_is_one_clear_error_naming_the_key(bucket, tmp_path):
    _, name = bucket
    raw = yaml.safe_load(TEST_PARAMS.read_text())
    raw["warehouse"]["files"] = f"s3://{name}/absent/*.parquet"
    with pytest.raises(PipelineError, match=r"^params\.yaml: warehouse\.files: .*absent"):
        open_warehouse(parse_params(raw), tmp_path)


def test_a_scheme_without_a_filesystem_says_what_to_install(tmp_path):
    raw = yaml.safe_load(TEST_PARAMS.read_text())
    raw["warehouse"]["files"] = "nosuchstore://bucket/events/*.parquet"
    with pytest.raises(PipelineError, match=r"warehouse\.files: no filesystem for 'nosuchstore://'.*fsspec"):
        open_warehouse(parse_params(raw), tmp_path)


def test_the_function_api_reads_the_bucket_too(bucket, local_files, tmp_path):
    client, name = bucket
    client.upload_file(str(local_files / "2024-03.parquet"), name, "one/2024-03.parquet")
    raw = yaml.safe_load(TEST_PARAMS.read_text())
    raw["warehouse"]["files"] = f"s3://{name}/one/2024-03.parquet"
    params = parse_params(raw)
    warehouse = open_warehouse(params, tmp_path)
    try:
        info = extract_snapshot(
            warehouse, params.extract, params.schema, params.warehouse.table, tmp_path / "s.parquet"
        )
    finally:
        warehouse.close()
    assert info["rows"] == 150 and info["cutoff"].startswith("2024-03")
