"""A stand-in for guided-diffusion's evaluations/evaluator.py in tests of genbench.adm_parity.

It has the names the harness uses (`tf.Session`, `tf.ConfigProto`, `INCEPTION_V3_PATH`, `Evaluator` with
warmup / read_activations / read_statistics / compute_inception_score / compute_prec_recall,
`FIDStatistics.frechet_distance`) and runs on numpy only. Its "Inception graph" is an .npz of tiny random
weights, read from `INCEPTION_V3_PATH` when an Evaluator is built, as the real module reads its graph:
the default path does not exist, so a harness that failed to repoint it fails here.
"""

from types import SimpleNamespace

import numpy as np

INCEPTION_V3_PATH = "classify_image_graph_def.pb"


class _ConfigProto:
    def __init__(self, allow_soft_placement=False):
        self.allow_soft_placement = allow_soft_placement
        self.gpu_options = SimpleNamespace(allow_growth=False)


class _Session:
    def __init__(self, config=None):
        self.config = config


tf = SimpleNamespace(ConfigProto=_ConfigProto, Session=_Session)


class FIDStatistics:
    def __init__(self, mu, sigma):
        self.mu, self.sigma = mu, sigma

    def frechet_distance(self, other):
        diff = self.mu - other.mu
        eigenvalues = np.linalg.eigvals(self.sigma @ other.sigma).real.clip(min=0)
        return diff @ diff + np.trace(self.sigma) + np.trace(other.sigma) - 2 * np.sqrt(eigenvalues).sum()


class Evaluator:
    def __init__(self, session, batch_size=64, softmax_batch_size=512):
        graph = np.load(INCEPTION_V3_PATH)
        self.pool_weights, self.spatial_weights = graph["pool"], graph["spatial"]
        self.logit_weights = graph["logits"]
        self.warmed_up = False

    def warmup(self):
        self.compute_activations(np.zeros([1, 8, 8, 3]))
        self.warmed_up = True

    def read_activations(self, npz_path):
        return self.compute_activations(np.load(npz_path)["arr_0"])

    def compute_activations(self, images):
        n, h, w, _ = images.shape
        cells = images.astype(np.float32).reshape(n, 4, h // 4, 4, w // 4, 3)
        pooled = cells.mean((2, 4)).reshape(n, -1) / 255
        return np.maximum(pooled @ self.pool_weights, 0), np.maximum(pooled @ self.spatial_weights, 0)

    def read_statistics(self, npz_path, activations):
        obj = np.load(npz_path)
        if "mu" in obj:
            return FIDStatistics(obj["mu"], obj["sigma"]), FIDStatistics(obj["mu_s"], obj["sigma_s"])
        return tuple(self.compute_statistics(x) for x in activations)

    def compute_statistics(self, activations):
        return FIDStatistics(activations.mean(0), np.cov(activations, rowvar=False))

    def compute_inception_score(self, activations, split_size=5000):
        logits = activations @ self.logit_weights
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        scores = []
        for i in range(0, len(p), split_size):
            part = p[i : i + split_size]
            scores.append(np.exp(np.mean(np.sum(part * (np.log(part) - np.log(part.mean(0))), 1))))
        return float(np.mean(scores))

    def compute_prec_recall(self, activations_ref, activations_sample):
        def distances(a, b):
            return ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)

        ref_radii = np.sort(distances(activations_ref, activations_ref), 1)[:, 3]
        sample_radii = np.sort(distances(activations_sample, activations_sample), 1)[:, 3]
        cross = distances(activations_ref, activations_sample)
        precision = (cross <= ref_radii[:, None]).any(0).mean()
        recall = (cross <= sample_radii[None, :]).any(1).mean()
        return float(precision), float(recall)
