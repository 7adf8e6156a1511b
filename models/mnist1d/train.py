"""Train the built-in MNIST-1D CNN and ship its weights with a calibration and a test split
(run once; needs the mnist1d and torch packages, which qsim itself does not).

    python models/mnist1d/train.py

MNIST-1D (Greydanus 2020) is generated procedurally with the package's default arguments
(4000 train / 1000 test signals of length 40). The CNN: Conv1d 1->16 k5 s2 p2, ReLU,
Conv1d 16->32 k3 s2 p1, ReLU, flatten, Linear 320->10.
"""

from pathlib import Path

import numpy as np

OUT = Path(__file__).with_name("mnist1d.npz")


def main() -> None:
    import torch
    from mnist1d.data import get_dataset_args, make_dataset
    from torch import nn

    data = make_dataset(get_dataset_args())
    x, y = data["x"].astype(np.float32)[:, None, :], data["y"].astype(np.int64)
    x_test, y_test = data["x_test"].astype(np.float32)[:, None, :], data["y_test"].astype(np.int64)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv1d(1, 16, 5, stride=2, padding=2), nn.ReLU(),
                        nn.Conv1d(16, 32, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(320, 10))
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    xt, yt = torch.from_numpy(x[:3500]), torch.from_numpy(y[:3500])
    for epoch in range(80):
        for idx in torch.randperm(len(xt)).split(100):
            opt.zero_grad()
            nn.functional.cross_entropy(net(xt[idx]), yt[idx]).backward()
            opt.step()
    with torch.no_grad():
        acc = (net(torch.from_numpy(x_test)).argmax(1).numpy() == y_test).mean()
    print(f"float test accuracy {acc:.4f}")
    w = {k: v.detach().numpy().astype(np.float32) for k, v in net.state_dict().items()}
    np.savez_compressed(OUT, calib=x[3500:3700], test=x_test, labels=y_test.astype(np.uint8),
                        c1_w=w["0.weight"], c1_b=w["0.bias"], c2_w=w["2.weight"], c2_b=w["2.bias"],
                        fc_w=w["5.weight"].T.copy(), fc_b=w["5.bias"])


if __name__ == "__main__":
    main()
