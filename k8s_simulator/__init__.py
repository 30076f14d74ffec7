"""A Kubernetes API SIMULATOR, not a Kubernetes cluster.

No kube-apiserver can run on the machines this project is built on, so this package stands
in for one in tests and in `make run-k8s`. It speaks kube-apiserver's REST protocol for the
core/v1 resources our spawner and KubeSpawner use (pods, pods/status, pods/log, PVCs, events,
namespaces, nodes, services, secrets, configmaps, serviceaccounts) over plain HTTP with a
bearer token, to the real `kubernetes` clients: label and field selectors, metav1.Status
errors (404/409/410/422), one monotonic resourceVersion, watches with bookmarks and 410 Gone.

It also plays the scheduler (nodes with capacity, taints, selectors; "0/3 nodes are
available: ..." messages) and the kubelet: each container runs as a local process at its pod
IP in 127.77.0.0/16, with volumes as directories. What it does not do (network and mount
namespaces, cgroups, limits, probes beyond "ready once running", RBAC, admission, other API
groups) is listed in k8s_simulator/README.md. Faults are injected on request (faults.py).
"""
