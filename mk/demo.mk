# make demo: bring up the lab (4 podman nodes), build the stand-in control plane and
# its air-gap bundle, provision the lab fleet with playbooks/site.yml and print one summary row
# per cluster (callback edgefleet.k8s.fleet_summary). The control planes in the lab are test
# stand-ins (kine/etcd + a real kube-apiserver behind a fake k3s/k0s CLI), never real K3s/K0s.
# The lab stays up afterwards: `make lab-down` removes it.
DEMO_INVENTORY ?= inventories/lab/lab.fleet.yml
DEMO_ARGS ?=

.PHONY: demo
demo: venv lab-up controlplane-bundle gitops-lab-bundle
	ANSIBLE_CALLBACKS_ENABLED=ansible.builtin.profile_tasks,edgefleet.k8s.fleet_summary \
	  $(BIN)/ansible-playbook playbooks/site.yml -i $(DEMO_INVENTORY) $(DEMO_ARGS)
	@echo "demo: the lab stays up (make lab-down removes it); the control planes are stand-ins, not real K3s/K0s"
