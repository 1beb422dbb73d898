"""Where a training job runs: `local` (a subprocess, or `torchrun` for several processes)
or `k8s` (a Kubeflow PyTorchJob across GPU nodes). Both run the same command,
`medgo-train <stage> --recipe R --out DIR --set ...`, so a recipe behaves the same on a
laptop and on 8 x 8 A100s.
"""
