//! Where images live in the objects a Kubernetes admission request carries (contract
//! `supply-chain.md` §9.3): the PodSpec of a Pod or of a workload's pod template, and in it
//! `containers`, `initContainers`, `ephemeralContainers` and image volumes.

use serde_json::Value;

/// One image a PodSpec names, with where (`spec.initContainers[0] (migrate)`) for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageUse {
    pub location: String,
    /// The reference as written; `None` when the field is missing or not a string.
    pub image: Option<String>,
}

/// The PodSpec path of each kind that creates pods; `None` for kinds Portcullis does not read.
pub fn pod_spec_path(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "Pod" => &["spec"],
        "Deployment"
        | "ReplicaSet"
        | "StatefulSet"
        | "DaemonSet"
        | "Job"
        | "ReplicationController" => &["spec", "template", "spec"],
        "PodTemplate" => &["template", "spec"],
        "CronJob" => &["spec", "jobTemplate", "spec", "template", "spec"],
        _ => return None,
    })
}

/// The pod template's metadata (where a workload's annotations for its pods live), or the
/// object's own for a Pod.
pub fn pod_metadata<'a>(kind: &str, object: &'a Value) -> &'a Value {
    let Some(path) = pod_spec_path(kind) else {
        return &Value::Null;
    };
    let mut v = object;
    for part in &path[..path.len() - 1] {
        v = &v[part];
    }
    &v["metadata"]
}

/// Every image of `object` of `kind`. `None` when the kind is not one that creates pods.
/// In a template a container without `image` is skipped (Kubernetes allows it there; the pod
/// is checked when created); in a Pod it is reported with `image: None`, to be denied.
pub fn images(kind: &str, object: &Value) -> Option<Vec<ImageUse>> {
    let path = pod_spec_path(kind)?;
    let mut spec = object;
    for part in path {
        spec = &spec[part];
    }
    let prefix = path.join(".");
    let is_pod = kind == "Pod";
    let mut out = Vec::new();
    for list in ["containers", "initContainers", "ephemeralContainers"] {
        for (i, c) in spec[list].as_array().into_iter().flatten().enumerate() {
            let name = c["name"].as_str().unwrap_or("");
            let image = c["image"].as_str().map(str::to_string);
            if image.is_none() && !is_pod {
                continue;
            }
            out.push(ImageUse {
                location: format!("{prefix}.{list}[{i}] ({name})"),
                image,
            });
        }
    }
    for (i, v) in spec["volumes"].as_array().into_iter().flatten().enumerate() {
        if v["image"].is_object() {
            let name = v["name"].as_str().unwrap_or("");
            out.push(ImageUse {
                location: format!("{prefix}.volumes[{i}].image ({name})"),
                image: v["image"]["reference"].as_str().map(str::to_string),
            });
        }
    }
    Some(out)
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_image_location_of_every_kind() {
        let spec = json!({"initContainers": [{"name": "migrate", "image": "a"}],
            "containers": [{"name": "app", "image": "b"}, {"name": "sidecar"}],
            "ephemeralContainers": [{"name": "debug", "image": "c"}],
            "volumes": [{"name": "data", "image": {"reference": "d"}}, {"name": "tmp", "emptyDir": {}}]});
        let pod = json!({"spec": spec});
        let found = images("Pod", &pod).unwrap();
        let refs: Vec<_> = found.iter().map(|u| u.image.as_deref()).collect();
        assert_eq!(refs, [Some("b"), None, Some("a"), Some("c"), Some("d")]);
        assert_eq!(found[2].location, "spec.initContainers[0] (migrate)");
        let cron = json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": spec}}}}});
        let found = images("CronJob", &cron).unwrap();
        assert_eq!(
            found.len(),
            4,
            "a template container without image is skipped"
        );
        assert!(
            found[0]
                .location
                .starts_with("spec.jobTemplate.spec.template.spec.containers[0]")
        );
        assert!(images("ConfigMap", &pod).is_none());
        let deploy =
            json!({"spec": {"template": {"metadata": {"annotations": {"x": "y"}}, "spec": spec}}});
        assert_eq!(pod_metadata("Deployment", &deploy)["annotations"]["x"], "y");
    }
}
