"""Run by tests/test_distributed.py under torchrun: train one method with fit on every rank."""
import sys

import torch
import torch.distributed as dist

from imagehelpers import smooth_images
from denoise_lib import methods
from denoise_lib.train import Budget, fit

if __name__ == "__main__":
    name, steps, batch, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    ckpt = sys.argv[5] if len(sys.argv) > 5 else None
    until = int(sys.argv[6]) if len(sys.argv) > 6 else None
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    m = methods.build(name, channels=1, noise="gaussian:25", patch_size=32, net={"features": 8, "depth": 2})
    ts = methods.method_class(name).training_set(smooth_images(3, size=(48, 56), seed=4), "gaussian:25", seed=0)
    b = Budget("t", steps=steps, seconds=None, batch_size=batch, patch_size=32, lr=1e-3)
    h = fit(m, ts, b, device="cpu", progress=False, checkpoint=ckpt, until=until, checkpoint_every=1)
    if dist.get_rank() == 0:
        torch.save({"state": m.state_dict(), "log": h.log, "steps": h.steps}, out)
    dist.destroy_process_group()
