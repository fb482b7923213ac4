"""The client side of ``kubectl rollout undo``: the target revision, kubectl's refusals word for
word, the annotation rules and the exact JSON patch it sends."""

from __future__ import annotations

from typing import Any

import pytest

from backend.k8s.annotations import (
    CHANGE_CAUSE_ANNOTATION,
    DESIRED_REPLICAS_ANNOTATION,
    LAST_APPLIED_ANNOTATION,
    MAX_REPLICAS_ANNOTATION,
    REVISION_ANNOTATION,
    REVISION_HISTORY_ANNOTATION,
)
from backend.k8s.rollout import (
    RollbackError,
    equal_ignore_hash,
    owned_replica_sets,
    plan_undo,
    restored_annotations,
    revision,
    target_replica_set,
    undo_patch,
    with_resource_version,
)

UID = "11111111-2222-4333-8444-555555555555"


def template(image: str, hashed: str | None = None) -> dict[str, Any]:
    labels = {"app": "web"} | ({"pod-template-hash": hashed} if hashed else {})
    return {
        "metadata": {"labels": labels},
        "spec": {"containers": [{"name": "server", "image": image}]},
    }


def deployment(image: str, annotations: dict[str, str] | None = None, **spec: Any) -> dict:
    return {
        "metadata": {
            "name": "web",
            "namespace": "team-a",
            "uid": UID,
            "annotations": annotations or {},
        },
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template(image), **spec},
    }


def replica_set(
    image: str,
    rev: str | None,
    *,
    created: str = "2026-01-01T00:00:00Z",
    owner: str = UID,
    annotations: dict[str, str] | None = None,
    namespace: str = "team-a",
) -> dict:
    notes = dict(annotations or {})
    if rev is not None:
        notes[REVISION_ANNOTATION] = rev
    return {
        "metadata": {
            "name": f"web-{image}",
            "namespace": namespace,
            "labels": {"app": "web", "pod-template-hash": f"h{image}"},
            "annotations": notes,
            "creationTimestamp": created,
            "ownerReferences": [
                {"kind": "Deployment", "name": "web", "uid": owner, "controller": True}
            ],
        },
        "spec": {"template": template(image, f"h{image}")},
    }


def history() -> list[dict]:
    """Revisions 1 (a), 2 (b) and 3 (c, current), listed out of order."""
    return [
        replica_set("c", "3", created="2026-01-03T00:00:00Z"),
        replica_set("a", "1", created="2026-01-01T00:00:00Z"),
        replica_set("b", "2", created="2026-01-02T00:00:00Z"),
    ]


# -- the target revision -------------------------------------------------------------------------
def test_previous_revision_is_the_second_highest() -> None:
    assert target_replica_set(deployment("c"), history())["metadata"]["name"] == "web-b"


def test_named_revision() -> None:
    assert target_replica_set(deployment("c"), history(), 1)["metadata"]["name"] == "web-a"


def test_revision_numbers_not_creation_order_decide() -> None:
    """A reused ReplicaSet is old but has the highest revision."""
    sets = [
        replica_set("a", "4", created="2026-01-01T00:00:00Z"),
        replica_set("b", "2", created="2026-01-02T00:00:00Z"),
        replica_set("c", "3", created="2026-01-03T00:00:00Z"),
    ]
    assert target_replica_set(deployment("a"), sets)["metadata"]["name"] == "web-c"


def test_missing_revision_counts_as_zero_and_malformed_is_ignored() -> None:
    assert revision(replica_set("a", None)) == 0
    assert revision(replica_set("a", "x1")) is None
    assert revision(replica_set("a", "+7")) == 7
    sets = [replica_set("a", None), replica_set("b", "junk"), replica_set("c", "5")]
    assert target_replica_set(deployment("c"), sets)["metadata"]["name"] == "web-a"


def test_only_replica_sets_the_deployment_controls_count() -> None:
    sets = [
        replica_set("c", "3"),
        replica_set("b", "2", owner="someone-else"),
        replica_set("a", "1", namespace="team-b"),
    ]
    assert owned_replica_sets(deployment("c"), sets) == [sets[0]]
    with pytest.raises(RollbackError) as err:
        target_replica_set(deployment("c"), sets)
    assert str(err.value) == 'no rollout history found for deployment "web"'


def test_owned_order_puts_the_current_template_last() -> None:
    names = [rs["metadata"]["name"] for rs in owned_replica_sets(deployment("a"), history())]
    assert names == ["web-b", "web-c", "web-a"]


# -- kubectl's error cases, word for word --------------------------------------------------------
def test_no_history() -> None:
    with pytest.raises(RollbackError) as err:
        plan_undo(deployment("a"), [replica_set("a", "1")])
    assert str(err.value) == 'no rollout history found for deployment "web"'
    with pytest.raises(RollbackError) as err:
        plan_undo(deployment("a"), [])
    assert str(err.value) == 'no rollout history found for deployment "web"'


def test_unknown_revision() -> None:
    for wanted in (9, -1):
        with pytest.raises(RollbackError) as err:
            plan_undo(deployment("c"), history(), wanted)
        assert str(err.value) == f"unable to find specified revision {wanted} in history"


def test_paused_deployment_is_refused_after_the_target_is_found() -> None:
    with pytest.raises(RollbackError) as err:
        plan_undo(deployment("c", paused=True), history())
    assert str(err.value) == (
        "you cannot rollback a paused deployment; resume it first with "
        "'kubectl rollout resume' and try again"
    )
    with pytest.raises(RollbackError, match="unable to find specified revision 9"):
        plan_undo(deployment("c", paused=True), history(), 9)


def test_matching_template_is_skipped() -> None:
    undo = plan_undo(deployment("c"), history(), 3)
    assert undo.patch is None
    assert undo.message == "skipped rollback (current template already matches revision 3)"


def test_skipped_message_names_the_revision_as_asked() -> None:
    """kubectl prints the ``--to-revision`` argument, so 0 when none was given."""
    sets = [replica_set("a", "1"), replica_set("b", "2")]
    undo = plan_undo(deployment("a"), sets)
    assert undo.patch is None
    assert undo.message == "skipped rollback (current template already matches revision 0)"


def test_equality_ignores_the_hash_label_and_empty_fields() -> None:
    with_empties = template("a")
    with_empties["spec"]["containers"][0]["resources"] = {}
    with_empties["metadata"]["creationTimestamp"] = None
    assert equal_ignore_hash(template("a", "h1"), with_empties)
    assert not equal_ignore_hash(template("a"), template("b"))
    other_labels = template("a")
    other_labels["metadata"]["labels"]["tier"] = "x"
    assert not equal_ignore_hash(template("a"), other_labels)


# -- the patch -----------------------------------------------------------------------------------
def test_patch_replaces_template_and_annotations() -> None:
    undo = plan_undo(deployment("c"), history())
    assert undo.message == "rolled back"
    assert undo.target["metadata"]["name"] == "web-b"
    assert undo.patch == [
        {"op": "replace", "path": "/spec/template", "value": template("b")},
        {"op": "replace", "path": "/metadata/annotations", "value": {}},
    ]


def test_pod_template_hash_is_the_only_label_dropped() -> None:
    rs = replica_set("b", "2")
    rs["spec"]["template"]["metadata"]["labels"] = {"pod-template-hash": "x"}
    value = undo_patch(deployment("c"), rs)[0]["value"]
    assert value == {"metadata": {}, "spec": template("b")["spec"]}
    assert rs["spec"]["template"]["metadata"]["labels"] == {"pod-template-hash": "x"}


def test_annotations_keep_the_deployments_bookkeeping_and_take_the_rest_from_the_replica_set() -> (
    None
):
    bookkeeping = {
        LAST_APPLIED_ANNOTATION: '{"deployment": true}',
        REVISION_ANNOTATION: "3",
        REVISION_HISTORY_ANNOTATION: "1",
        DESIRED_REPLICAS_ANNOTATION: "2",
        MAX_REPLICAS_ANNOTATION: "3",
        "deprecated.deployment.rollback.to": "1",
    }
    deploy = deployment(
        "c", {**bookkeeping, CHANGE_CAUSE_ANNOTATION: "now", "only-on-deployment": "x"}
    )
    rs = replica_set(
        "b",
        "2",
        annotations={
            CHANGE_CAUSE_ANNOTATION: "then",
            "team": "inference",
            LAST_APPLIED_ANNOTATION: '{"replicaset": true}',
            DESIRED_REPLICAS_ANNOTATION: "5",
            MAX_REPLICAS_ANNOTATION: "7",
            REVISION_HISTORY_ANNOTATION: "0",
        },
    )
    assert restored_annotations(deploy, rs) == {
        **bookkeeping,
        CHANGE_CAUSE_ANNOTATION: "then",
        "team": "inference",
    }
    assert undo_patch(deploy, rs)[1] == {
        "op": "replace",
        "path": "/metadata/annotations",
        "value": restored_annotations(deploy, rs),
    }


def test_bookkeeping_the_deployment_lacks_stays_absent() -> None:
    deploy = deployment("c", {REVISION_ANNOTATION: "3"})
    rs = replica_set("a", "1", annotations={CHANGE_CAUSE_ANNOTATION: "first"})
    assert restored_annotations(deploy, rs) == {
        REVISION_ANNOTATION: "3",
        CHANGE_CAUSE_ANNOTATION: "first",
    }


def test_resource_version_precondition_is_an_extra_op() -> None:
    patch = undo_patch(deployment("c"), replica_set("a", "1"))
    guarded = with_resource_version(patch, "42")
    assert guarded[:2] == patch
    assert guarded[2] == {"op": "replace", "path": "/metadata/resourceVersion", "value": "42"}
