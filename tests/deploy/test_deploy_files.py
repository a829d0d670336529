"""The deployment files parse, and everything they run exists in this project.

No container engine or cluster runs here: the compose file, the Kubernetes manifests, the Dockerfile
and the gunicorn config are parsed and every command they name is resolved against the code.
"""

from __future__ import annotations

import runpy

import pytest
import yaml

from tests.deploy.deploy_files import (
    DEPLOY,
    K8S,
    ROOT,
    celery_queues,
    check_command,
    compose,
    dockerfile_stages,
    k8s_objects,
    yaml_documents,
)

APP_SERVICES = {"migrate", "web", "worker-decisions", "worker-training", "worker-default", "beat"}
API_VERSIONS = {
    "Namespace": "v1",
    "ConfigMap": "v1",
    "Service": "v1",
    "PersistentVolumeClaim": "v1",
    "Deployment": "apps/v1",
    "Job": "batch/v1",
    "HorizontalPodAutoscaler": "autoscaling/v2",
    "PodDisruptionBudget": "policy/v1",
    "Kustomization": "kustomize.config.k8s.io/v1beta1",
}


# ---- every file


def test_every_file_under_deploy_parses():
    files = sorted(p for p in DEPLOY.rglob("*") if p.is_file())
    assert files, "deploy/ is empty"
    for path in files:
        if path.suffix in (".yaml", ".yml"):
            assert yaml_documents(path), f"{path} has no YAML document"
        elif path.suffix == ".py":
            compile(path.read_text(), str(path), "exec")
        elif path.name == "Dockerfile":
            assert dockerfile_stages(path)
        elif path.name == "env.example":
            for line in path.read_text().splitlines():
                assert not line.strip() or line.startswith("#") or "=" in line, f"{path}: {line!r}"
        else:
            assert path.suffix in (".md", ".dockerignore"), f"unexpected file {path}"


# ---- Dockerfile


def test_dockerfile_is_multi_stage_and_its_final_stage_has_no_build_tools_and_runs_unprivileged():
    stages = dockerfile_stages()
    assert len(stages) >= 2
    build, final = stages[0], stages[-1]
    build_runs = " ".join(args for instruction, args in build.instructions if instruction == "RUN")
    # torch 2.13.0 (CPU index) is installed before the project, as scripts/setup.sh does.
    assert "torch==2.13.0" in build_runs and "whl/cpu" in "".join(a for _, a in build.instructions)
    assert build_runs.index("torch==2.13.0") < build_runs.index('pip install ".[rl]"')
    final_text = " ".join(args for _, args in final.instructions)
    assert f"--from={build.name}" in final_text
    for tool in ("build-essential", "gcc", "apt-get install", "pip install"):
        assert tool not in final_text, f"the final image installs {tool}"
    users = [args for instruction, args in final.instructions if instruction == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert any("collectstatic" in args for instruction, args in final.instructions if instruction == "RUN")
    cmd = next(args for instruction, args in reversed(final.instructions) if instruction == "CMD")
    assert check_command(yaml.safe_load(cmd), "Dockerfile CMD") == []
    for instruction, args in final.instructions:
        if instruction == "COPY" and "--from" not in args:
            for source in args.split()[:-1]:
                if not source.startswith("--"):
                    assert (ROOT / source).exists(), f"Dockerfile copies {source}, which does not exist"


# ---- compose


def test_compose_runs_every_process_of_the_platform():
    services = compose()["services"]
    assert {"postgres", "redis", "vllm", *APP_SERVICES} <= set(services)
    for name, service in services.items():
        assert "image" in service or "build" in service, f"{name} has neither image nor build"
    for name in APP_SERVICES:
        build = services[name]["build"]
        assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == (
            DEPLOY / "Dockerfile"
        ).resolve()
        assert check_command(services[name]["command"], f"compose {name}") == []
        environment = services[name]["environment"]
        for variable in ("SECRET_KEY", "DATABASE_URL", "CELERY_BROKER_URL", "ALLOWED_HOSTS"):
            assert variable in environment, f"{name} lacks {variable}"
        assert environment["DEBUG"] == "0"
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown service {dependency}"


def test_compose_has_one_worker_per_queue_and_the_training_one_is_solo():
    services = compose()["services"]
    served = {}
    for name, service in services.items():
        command = service.get("command") or []
        if command[:4] == ["celery", "-A", "caseloop", "worker"]:
            served[command[command.index("-Q") + 1]] = command
    assert set(served) == celery_queues() == {"decisions", "training", "default"}
    training = served["training"]
    assert training[training.index("--pool") + 1] == "solo"
    beats = [
        s for s in services.values() if (s.get("command") or [])[:4] == ["celery", "-A", "caseloop", "beat"]
    ]
    assert len(beats) == 1
    assert services["web"]["command"][:2] == ["gunicorn", "caseloop.wsgi:application"]
    assert services["migrate"]["command"] == ["python", "manage.py", "migrate", "--noinput"]


def test_compose_vllm_serves_a_mounted_policy_directory_read_only():
    vllm = compose()["services"]["vllm"]
    assert "vllm/vllm-openai" in vllm["image"]
    model = vllm["command"][vllm["command"].index("--model") + 1]
    mounts = [volume.rsplit(":", 2)[-2:] for volume in vllm["volumes"]]  # the source may hold ":-"
    assert [model, "ro"] in mounts
    assert vllm["profiles"] == ["lm"]


# ---- Kubernetes


def test_every_kubernetes_object_has_a_known_kind_and_api_version():
    objects = k8s_objects()
    assert objects
    for path, obj in objects:
        assert obj.get("kind") in API_VERSIONS, f"{path}: unknown kind {obj.get('kind')}"
        assert obj["apiVersion"] == API_VERSIONS[obj["kind"]], f"{path}: {obj['kind']} apiVersion"
        if obj["kind"] != "Kustomization":
            assert obj["metadata"]["name"].startswith("caseloop")
            if obj["kind"] != "Namespace":
                assert obj["metadata"]["namespace"] == "caseloop", path


def _deployments() -> dict[str, dict]:
    return {obj["metadata"]["name"]: obj for _, obj in k8s_objects() if obj["kind"] == "Deployment"}


def _pod_spec(obj: dict) -> dict:
    return obj["spec"]["template"]["spec"]


def test_deployments_for_web_each_worker_queue_beat_and_vllm():
    deployments = _deployments()
    assert set(deployments) == {
        "caseloop-web",
        "caseloop-worker-decisions",
        "caseloop-worker-training",
        "caseloop-worker-default",
        "caseloop-beat",
        "caseloop-vllm",
    }
    queues = set()
    for name, deployment in deployments.items():
        selector = deployment["spec"]["selector"]["matchLabels"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items(), f"{name}: selector does not match its pods"
        for container in _pod_spec(deployment)["containers"]:
            where = f"{name}/{container['name']}"
            requests = container["resources"]["requests"]
            limits = container["resources"]["limits"]
            assert {"cpu", "memory"} <= set(requests) and {"cpu", "memory"} <= set(limits), where
            assert "livenessProbe" in container and "readinessProbe" in container, where
            if name != "caseloop-vllm":
                assert check_command(container["command"], where) == []
                command = container["command"]
                if command[3:4] == ["worker"]:
                    queues.add(command[command.index("-Q") + 1])
    assert queues == celery_queues()
    assert deployments["caseloop-beat"]["spec"]["replicas"] == 1


def test_training_and_vllm_run_on_gpu_nodes_and_ask_for_a_gpu():
    deployments = _deployments()
    for name in ("caseloop-worker-training", "caseloop-vllm"):
        spec = _pod_spec(deployments[name])
        assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}, name
        assert any(t["key"] == "nvidia.com/gpu" for t in spec["tolerations"]), name
        container = spec["containers"][0]
        assert container["resources"]["limits"]["nvidia.com/gpu"] == "1", name
    for name in ("caseloop-web", "caseloop-worker-decisions", "caseloop-worker-default", "caseloop-beat"):
        assert "nodeSelector" not in _pod_spec(deployments[name]), name


def test_application_pods_take_secrets_from_the_secret_and_run_unprivileged():
    app_objects = [
        obj
        for _, obj in k8s_objects()
        if obj["kind"] in ("Deployment", "Job") and obj["metadata"]["name"] != "caseloop-vllm"
    ]
    assert len(app_objects) == 6
    for obj in app_objects:
        pod = obj["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0
        for container in pod["containers"]:
            env = {item["name"]: item for item in container.get("env", [])}
            for secret in ("SECRET_KEY", "DATABASE_URL", "CELERY_BROKER_URL"):
                reference = env[secret]["valueFrom"]["secretKeyRef"]
                assert reference == {"name": "caseloop-secrets", "key": secret}, (
                    obj["metadata"]["name"],
                    secret,
                )
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
    secrets = [obj for _, obj in k8s_objects() if obj["kind"] == "Secret"]
    assert secrets == [], "secret values never live in the repository"


def test_migration_job_runs_migrate():
    jobs = [obj for _, obj in k8s_objects() if obj["kind"] == "Job"]
    assert [job["metadata"]["name"] for job in jobs] == ["caseloop-migrate"]
    container = jobs[0]["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["python", "manage.py", "migrate", "--noinput"]
    assert check_command(container["command"], "migrate job") == []


def test_decisions_workers_have_a_horizontal_pod_autoscaler():
    hpas = [obj for _, obj in k8s_objects() if obj["kind"] == "HorizontalPodAutoscaler"]
    assert len(hpas) == 1
    target = hpas[0]["spec"]["scaleTargetRef"]
    assert target == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "caseloop-worker-decisions"}
    assert 1 <= hpas[0]["spec"]["minReplicas"] < hpas[0]["spec"]["maxReplicas"]
    assert hpas[0]["spec"]["metrics"]
    # The autoscaler needs CPU requests on the pods it scales.
    decisions = _deployments()["caseloop-worker-decisions"]
    assert _pod_spec(decisions)["containers"][0]["resources"]["requests"]["cpu"]


def test_services_select_existing_pods_and_kustomization_lists_existing_files():
    deployments = _deployments()
    for _, obj in k8s_objects():
        if obj["kind"] == "Service":
            selector = obj["spec"]["selector"]
            assert any(
                selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
                for d in deployments.values()
            ), obj["metadata"]["name"]
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    for resource in kustomization["resources"]:
        assert (K8S / resource).is_file(), resource
    listed = set(kustomization["resources"])
    assert {p.name for p in K8S.glob("*.yaml")} - listed == {"kustomization.yaml", "migrate-job.yaml"}


# ---- gunicorn


def test_gunicorn_config_loads_and_binds_the_port_the_manifests_probe(monkeypatch):
    monkeypatch.setenv("WEB_CONCURRENCY", "2")
    config = runpy.run_path(str(DEPLOY / "gunicorn.conf.py"))
    assert config["bind"] == "0.0.0.0:8000"
    assert config["workers"] == 2
    assert callable(config["child_exit"]) and callable(config["on_starting"])
    web = _deployments()["caseloop-web"]
    assert _pod_spec(web)["containers"][0]["ports"][0]["containerPort"] == 8000


@pytest.mark.parametrize(
    "bad",
    [
        ["celery", "-A", "other", "worker", "-Q", "decisions"],
        ["celery", "-A", "caseloop", "worker", "-Q", "fast"],
        ["python", "manage.py", "no_such_command"],
        ["gunicorn", "other.wsgi:application"],
    ],
)
def test_the_command_checker_rejects_what_does_not_exist(bad):
    assert check_command(bad, "example") != []


def test_probes_point_at_routes_and_commands_that_exist():
    from django.urls import resolve

    probed = set()
    for name, deployment in _deployments().items():
        if name == "caseloop-vllm":
            continue
        for container in _pod_spec(deployment)["containers"]:
            for kind in ("livenessProbe", "readinessProbe"):
                probe = container[kind]
                if "httpGet" in probe:
                    route = resolve(probe["httpGet"]["path"]).url_name
                    probed.add((kind, route))
                    assert {"name": "Host", "value": "localhost"} in probe["httpGet"]["httpHeaders"]
                else:
                    assert check_command(probe["exec"]["command"], f"{name} {kind}") == []
    # Liveness never depends on the database; readiness checks the dependencies.
    assert probed == {("livenessProbe", "healthz"), ("readinessProbe", "readyz")}
    configmap = next(obj for _, obj in k8s_objects() if obj["kind"] == "ConfigMap")
    assert "localhost" in configmap["data"]["ALLOWED_HOSTS"].split(",")
