"""Settings: the config contract of DESIGN.md parses; mistakes name their field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tidegate.errors import ConfigError
from tidegate.settings import (
    ForwardingSettings,
    LocationRewrite,
    Settings,
    load_settings,
    parse_settings,
)

DESIGN_EXAMPLE = """
redis:
  url: redis://127.0.0.1:6379/0
gateway:
  listen: 0.0.0.0:8080
  admin_listen: 0.0.0.0:9090
routes:
  - name: orders
    match:
      path_prefix: /orders
      methods: [POST, PUT]
    mode: sync
    wait_s: 10
    max_body_bytes: 1048576
    result_ttl_s: 3600
    worker:
      max_attempts: 5
      visibility_timeout_s: 30
      timeout_s: 10
      compensate_path: /orders/compensate
    scaler:
      target:
        kind: deployment
        namespace: shop
        name: orders-worker
      min_replicas: 0
      max_replicas: 20
      drain_target_s: 30
      scale_down_window_s: 60
      throttle:
        enabled: true
        status: 429
        burst_s: 2
"""


def problems_of(raw: object, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_settings(raw, env or {})
    return info.value.problems


def test_design_example_parses(tmp_path: Path) -> None:
    path = tmp_path / "tidegate.yaml"
    path.write_text(DESIGN_EXAMPLE)
    settings = load_settings(path, env={})
    route = settings.route("orders")
    assert route.match.methods == ("POST", "PUT")
    assert route.worker.compensate_path == "/orders/compensate"
    assert route.scaler is not None
    assert route.scaler.target.name == "orders-worker"
    assert route.scaler.throttle.status == 429


def test_settings_are_frozen() -> None:
    settings = parse_settings({}, {})
    with pytest.raises(AttributeError):
        settings.redis = settings.redis  # type: ignore[misc]


def test_unknown_key_is_named_with_its_path() -> None:
    raw = {"routes": [{"name": "a", "match": {"path_prefix": "/a"}, "max_body_bytez": 3}]}
    assert problems_of(raw) == ["routes[0].max_body_bytez: unknown key"]


def test_nested_bad_values_name_their_field() -> None:
    raw = {
        "gateway": {"listen": "nowhere"},
        "routes": [{"name": "Bad_Name", "match": {"path_prefix": "a", "methods": ["FETCH"]}}],
    }
    found = problems_of(raw)
    assert any(p.startswith("gateway.listen: expected host:port") for p in found)
    assert any(p.startswith("routes[0].name: must be") for p in found)
    assert "routes[0].match.path_prefix: must start with /" in found
    assert "routes[0].match.methods: unknown HTTP method(s) FETCH" in found


@pytest.mark.parametrize(
    "upstream", ["svc:8080", "u:s3cret@svc:80", "ftp://svc/", "http://", "http://svc:port/", "/up"]
)
def test_a_proxy_upstream_is_an_http_url(upstream: str) -> None:
    route = {"name": "a", "match": {"path_prefix": "/a"}, "mode": "proxy", "upstream": upstream}
    found = problems_of({"routes": [route]})
    assert found == ["routes[0].upstream: an upstream is an http:// or https:// URL with a host"]
    assert "s3cret" not in "".join(found)


def test_missing_required_field() -> None:
    assert problems_of({"routes": [{"name": "a"}]}) == ["routes[0].match: required"]


def test_duplicate_route_names_and_mode_rules() -> None:
    route = {"name": "a", "match": {"path_prefix": "/a"}}
    assert any("used twice" in p for p in problems_of({"routes": [route, route]}))
    assert any(
        "needs an upstream" in p for p in problems_of({"routes": [{**route, "mode": "proxy"}]})
    )
    assert any(
        "reserved" in p
        for p in problems_of({"routes": [{"name": "a", "match": {"path_prefix": "/_tidegate"}}]})
    )


def test_scaler_bounds_and_target_shape() -> None:
    raw = {
        "routes": [
            {
                "name": "a",
                "match": {"path_prefix": "/a"},
                "scaler": {"target": {"kind": "local"}, "min_replicas": 5, "max_replicas": 2},
            }
        ]
    }
    found = problems_of(raw)
    assert any(p.startswith("routes[0].scaler.target") and "exactly one" in p for p in found)


def test_environment_overrides_scalar_fields() -> None:
    env = {"TIDEGATE_REDIS_URL": "redis://elsewhere:6380/2", "TIDEGATE_GATEWAY_LISTEN": ":8181"}
    settings = parse_settings({"redis": {"url": "redis://x:1/0"}}, env)
    assert settings.redis.url == "redis://elsewhere:6380/2"
    assert settings.gateway.listen == ":8181"


def test_environment_override_is_validated_too() -> None:
    assert problems_of({}, {"TIDEGATE_REDIS_URL": "http://nope"}) == [
        "redis.url: must start with redis://, rediss:// or unix://"
    ]


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("routes: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(bad)
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_settings(bad)


def test_route_lookup_names_the_known_routes() -> None:
    settings = Settings(**{"routes": [{"name": "a", "match": {"path_prefix": "/a"}}]})  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"no such route \(configured: a\)"):
        settings.route("b")


def test_tenants_can_come_from_a_file_of_their_own(tmp_path: Path) -> None:
    digest = "a" * 64
    secret = tmp_path / "tenants.yaml"
    secret.write_text(yaml.safe_dump([{"name": "acme", "api_key_sha256": digest}]))
    config = tmp_path / "tidegate.yaml"
    config.write_text(yaml.safe_dump({"tenants_file": str(secret)}))
    settings = load_settings(config, env={})
    assert [t.name for t in settings.tenants] == ["acme"]
    config.write_text(yaml.safe_dump({}))
    assert load_settings(config, env={"TIDEGATE_TENANTS_FILE": str(secret)}).tenants
    secret.write_text(yaml.safe_dump([{"name": "acme", "api_key_sha256": "not-a-digest"}]))
    with pytest.raises(ConfigError, match=r"tenants\[0\].api_key_sha256: must be 64"):
        load_settings(config, env={"TIDEGATE_TENANTS_FILE": str(secret)})
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(config, env={"TIDEGATE_TENANTS_FILE": str(tmp_path / "missing.yaml")})


def test_parts_that_serve_no_clients_do_not_need_the_tenants_file(tmp_path: Path) -> None:
    config = tmp_path / "tidegate.yaml"
    config.write_text(yaml.safe_dump({"tenants_file": str(tmp_path / "not-mounted.yaml")}))
    assert load_settings(config, env={}, tenants=False).tenants == ()
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(config, env={})  # the gateway needs it


@pytest.mark.parametrize(
    ("partitions", "mode", "problem"),
    [
        (3, "async", None),
        (256, "sync", None),
        (0, "async", "routes[0].partitions"),
        (257, "async", "routes[0].partitions"),
        (2.5, "async", "routes[0].partitions"),
        (2, "proxy", "partitions are for queued routes"),
    ],
)
def test_partitions_are_bounded_and_only_for_queued_routes(
    partitions: object, mode: str, problem: str | None
) -> None:
    route = {"name": "a", "match": {"path_prefix": "/a"}, "mode": mode, "partitions": partitions}
    if mode == "proxy":
        route["upstream"] = "http://up:8000"
    if problem is None:
        assert parse_settings({"routes": [route]}, {}).route("a").partitions == partitions
    else:
        assert any(problem in p for p in problems_of({"routes": [route]}))


SECRET = "whsec_" + "QUJD" * 8  # 24 bytes


def _callback_route(callback: object, **route: object) -> dict[str, object]:
    return {
        "routes": [
            {"name": "a", "match": {"path_prefix": "/a"}, "callback": callback, **route},
        ]
    }


@pytest.mark.parametrize(
    ("callback", "route", "problem"),
    [
        (
            {"allow": [], "secret": SECRET},
            {},
            "routes[0].callback.allow: Tuple should have at least 1",
        ),
        ({"allow": ["ftp://x/"], "secret": SECRET}, {}, "not an http or https URL"),
        ({"allow": ["https://u:p@x/"], "secret": SECRET}, {}, "credentials"),
        ({"allow": ["https://x/?a=1"], "secret": SECRET}, {}, "a prefix has no query"),
        ({"allow": ["https://x/%2e%2e/"], "secret": SECRET}, {}, "path refused"),
        ({"allow": ["https://x/"]}, {}, "exactly one of secret or secret_file"),
        (
            {"allow": ["https://x/"], "secret": SECRET, "secret_file": "/nowhere"},
            {},
            "exactly one of secret or secret_file",
        ),
        ({"allow": ["https://x/"], "secret": "hunter2"}, {}, "starts with whsec_"),
        ({"allow": ["https://x/"], "secret": "whsec_QUJD"}, {}, "24 to 64 bytes"),
        ({"allow": ["https://x/"], "secret": SECRET, "timeout_s": 0}, {}, "timeout_s"),
        (
            {"allow": ["https://x/"], "secret": SECRET},
            {"mode": "proxy", "upstream": "http://u"},
            "a proxy route has no jobs",
        ),
        (
            {"allow": ["https://x/"], "secret": SECRET, "give_up_after_s": 7200},
            {"result_ttl_s": 3600},
            "give_up_after_s is above result_ttl_s",
        ),
    ],
)
def test_callback_settings_name_what_is_wrong_and_never_the_secret(
    callback: object, route: dict[str, object], problem: str
) -> None:
    problems = problems_of(_callback_route(callback, **route))
    assert any(problem in p for p in problems), problems
    assert not any("hunter2" in p or "QUJD" in p for p in problems)


def test_the_callback_secret_may_come_from_a_file_and_is_never_shown(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text(SECRET + "\n")
    settings = parse_settings(_callback_route({"allow": ["https://x/"], "secret_file": str(path)}))
    callback = settings.routes[0].callback
    assert callback is not None
    assert callback.key == b"ABC" * 8
    assert "QUJD" not in repr(settings)


@pytest.mark.parametrize(("content", "why"), [(None, "cannot read"), ("hunter2", "whsec_")])
def test_a_bad_secret_file_stops_the_worker_not_the_gateway(
    tmp_path: Path, content: str | None, why: str
) -> None:
    path = tmp_path / "secret"
    if content is not None:
        path.write_text(content)
    settings = parse_settings(_callback_route({"allow": ["https://x/"], "secret_file": str(path)}))
    callback = settings.routes[0].callback
    assert callback is not None
    with pytest.raises(ConfigError, match=why) as caught:
        callback.key  # noqa: B018
    assert "hunter2" not in str(caught.value.problems)


@pytest.mark.parametrize(
    ("prefix", "path", "strip", "expected"),
    [
        ("/orders", "/orders/7", True, "/7"),
        ("/orders", "/orders", True, "/"),
        ("/orders/", "/orders/7/x", True, "/7/x"),
        ("/", "/a/b", True, "/a/b"),
        ("/orders", "/orders/7", False, "/orders/7"),
    ],
)
def test_a_route_may_strip_its_prefix(prefix: str, path: str, strip: bool, expected: str) -> None:
    assert ForwardingSettings(strip_prefix=strip).service_path(prefix, path) == expected


def test_redirects_are_rewritten_by_the_first_matching_prefix() -> None:
    forwarding = ForwardingSettings(
        rewrite_location=(
            LocationRewrite(from_prefix="http://svc:8000/", to_prefix="/app/"),
            LocationRewrite(from_prefix="http://svc:8000/", to_prefix="/never/"),
        )
    )
    headers = [
        ("Location", "http://svc:8000/a?b=1"),
        ("content-location", "http://svc:8000/c"),
        ("Link", "http://svc:8000/d"),  # not a redirect target: left as it is
        ("Location", "https://elsewhere/x"),
    ]
    assert forwarding.answer_headers(headers) == [
        ("Location", "/app/a?b=1"),
        ("content-location", "/app/c"),
        ("Link", "http://svc:8000/d"),
        ("Location", "https://elsewhere/x"),
    ]


@pytest.mark.parametrize("bad", ["", "http://svc/ x", "http://svc/\r\nX: y"])
def test_a_rewrite_prefix_is_a_plain_prefix(bad: str) -> None:
    raw = {
        "routes": [
            {
                "name": "app",
                "match": {"path_prefix": "/app"},
                "forwarding": {"rewrite_location": [{"from_prefix": bad, "to_prefix": "/app/"}]},
            }
        ]
    }
    with pytest.raises(ConfigError) as e:
        parse_settings(raw, env={})
    assert "routes[0].forwarding.rewrite_location[0].from_prefix" in str(e.value)


@pytest.mark.parametrize(
    "upstream",
    [
        "http://svc/base/..;/admin",
        "http://svc/base/%2e%2e/x",
        "http://svc/a/..%3B",
        "http://svc/.;/",
    ],
)
def test_a_proxy_base_path_holds_no_dot_segment(upstream: str) -> None:
    raw = {
        "routes": [
            {"name": "p", "match": {"path_prefix": "/p"}, "mode": "proxy", "upstream": upstream}
        ]
    }
    with pytest.raises(ConfigError) as e:
        parse_settings(raw, env={})
    assert "routes[0].upstream: an upstream's base path may not hold a dot segment" in str(e.value)
    assert upstream not in str(e.value)  # the URL may hold credentials


def test_the_redis_url_may_come_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "redis-url"
    secret.write_text("redis://:s3cret@redis.shop:6379/2\n")
    settings = parse_settings({"redis": {"url_file": str(secret)}}, env={})
    assert settings.redis.url == "redis://:s3cret@redis.shop:6379/2"
    from_env = parse_settings({}, env={"TIDEGATE_REDIS_URL_FILE": str(secret)})
    assert from_env.redis.url == settings.redis.url
    # the file wins over a url given beside it (the chart sets both ways)
    both = parse_settings({"redis": {"url": "redis://other/0", "url_file": str(secret)}}, env={})
    assert both.redis.url == settings.redis.url


@pytest.mark.parametrize("content", [None, "", "  \n", "http://not-redis/"])
def test_a_url_file_that_cannot_serve_is_named(tmp_path: Path, content: str | None) -> None:
    path = tmp_path / "redis-url"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError) as e:
        parse_settings({"redis": {"url_file": str(path)}}, env={})
    assert str(e.value).startswith("redis.url")
    assert "http://not-redis" not in str(e.value) or "must start with" in str(e.value)
