"""Kubernetes manifests of scheduled soaks (`soak k8s`): a Job or CronJob per soak, beside
the ConfigMap of its soak.toml, for the Job image (`soak image job`) to run."""
