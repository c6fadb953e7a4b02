"""The data-sanitising defence: find the poisoned samples of a training set and drop them.

The defender has only the (possibly poisoned) training set, no trusted model: the one model used
here, the *reference*, is trained briefly (``epochs``) on that set itself. Three filters
(``SanitizeConfig.methods``):

``"loss"``: the reference model scores every sample. With ``drop_fraction`` > 0 the
highest-loss ``drop_fraction`` of the set is flagged; with 0 ("auto") every sample whose label
the reference model does not predict. Catches wrong labels the model has not had time to
memorise (label flips, a rare backdoor); blind to poison the model learns at once (after one
epoch a backdoor of 5 % or more has *lower* loss than the clean digits).

``"knn"``: label sanitisation by k nearest neighbours in pixel space (Paudice et al. 2018,
arXiv:1803.00992): a sample is flagged when fewer than half of its ``k`` nearest other images
carry its label. No training; catches relabelled images whose pixels still look like their
class, at the price of the digits a k-NN classifier gets wrong anyway (about 7 % here).

Each of these two alone drops 5-13 % of the clean training digits (its own errors, measured
with 10-30 % flips); with ``consensus`` (the default) a sample is flagged only when both flag
it, which keeps almost every flip they catch and drops 3-4 % of the clean digits (their errors
overlap less).

``"clustering"``: activation clustering (Chen et al. 2018, arXiv:1811.03728). Per class (by the
label in the set), the reference model's penultimate activations are centred, reduced to
``components`` dimensions by PCA (``torch.pca_lowrank``) and split by 2-means: stamped images of
other digits labelled as the target class form their own cluster. Which cluster, if any, is
poison is decided per ``decide``:

- ``"size"`` (the paper's relative-size rule): the smaller cluster when it holds at most
  ``max_share`` of its class. Measured on the digits this fails both ways: clean classes split
  into two handwriting styles with shares of 0.35-0.5, and a 10 % backdoor into class 0 is half
  of the samples labelled 0 (400 of 800).
- ``"knn"`` (default): a cluster is poison when at least ``min_disagreement`` of its samples
  fail the k-NN label check. This stands in for the paper's *exclusionary reclassification*
  (retrain without the cluster, see whether the rest of the class still claims it), which costs
  one retraining per cluster: k-NN in pixel space is a classifier that never learnt the
  trigger, so it sees a stamped 3 labelled 0 as a 3, while a cluster of genuine 0s (one
  handwriting style) is seen as 0s. A poison cluster the reference model nevertheless *fits*
  (predicts its label for at least half of it) is a shortcut the model learnt, a backdoor, and
  is dropped whole (k-NN alone misses the stamped images whose neighbours are stamped too: a
  quarter of them at 10 %); one the model does not fit is mislabelled images among genuine ones
  and only its samples the checks contradict are dropped (see :func:`cluster_flags`).
  Limitation: a trigger that changes many pixels (a blended pattern) moves the stamped images
  close to each other in pixel space, and k-NN then agrees with the poisoned label.

Flags of clustering are added to those of the per-sample filters. The report compares the flags
with the known poisoned positions (found, clean dropped, missed, precision, recall), for the
whole and for each filter.
"""

import math
import time
from collections.abc import Generator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from advstudio.core import validate as v
from advstudio.core.devices import pick_device
from advstudio.core.errors import ConfigError
from advstudio.core.jobs import Event, Log, Metrics, Progress
from advstudio.core.models.architectures import ARCHITECTURES
from advstudio.core.models.classifier import Classifier, penultimate_features
from advstudio.core.models.names import GENERIC_ARCHITECTURES
from advstudio.core.poisoning.attacks import check_fraction
from advstudio.core.poisoning.views import PoisonedView

SEQUENTIAL = (*ARCHITECTURES, *GENERIC_ARCHITECTURES)
"""Reference models the filters can read (plain stacks: the penultimate layer is net[:-1])."""
METHODS = ("loss", "knn", "clustering")
DECISIONS = ("knn", "size")


def parse_methods(text: str | tuple[str, ...]) -> tuple[str, ...]:
    """``"loss+clustering"`` (or a tuple) -> ``("loss", "clustering")``, checked."""
    names = tuple(text.split("+")) if isinstance(text, str) else tuple(text)
    names = tuple(n.strip() for n in names if n.strip())
    bad = [n for n in names if n not in METHODS]
    if bad or not names:
        raise ConfigError(
            f"sanitiser methods must be one or more of {', '.join(METHODS)} "
            f"joined by '+', not {'+'.join(names) or repr(text)}"
        )
    return tuple(dict.fromkeys(names))


@dataclass(frozen=True)
class SanitizeConfig:
    """``methods``: filters to use, any of ``"loss"``, ``"knn"``, ``"clustering"`` (a tuple,
    or a string joined by ``+``). ``consensus``: the per-sample filters (loss, knn) flag a
    sample only when all of them do (else when any does); clustering's flags are always added.
    ``drop_fraction``: loss filter, share of the set to drop by highest loss; 0 = drop what the
    reference model disagrees with. ``epochs``: training of the brief reference model. ``k``:
    neighbours of the k-NN check. ``components``: PCA dimensions for clustering. ``decide``: how
    a cluster is judged poison, ``"knn"`` (at least ``min_disagreement`` of it fails the k-NN
    check) or ``"size"`` (the smaller cluster, if it holds at most ``max_share`` of its class).
    ``arch``, ``batch_size``, ``lr``, ``seed``, ``device``: the reference model's training."""

    methods: tuple[str, ...] | str = ("loss", "knn", "clustering")
    consensus: bool = True
    drop_fraction: float = 0.0
    epochs: int = 1
    k: int = 10
    components: int = 10
    decide: str = "knn"
    min_disagreement: float = 0.5
    max_share: float = 0.35
    batch_size: int = 64
    lr: float = 1e-3
    arch: str = "digits-cnn"
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        object.__setattr__(self, "methods", parse_methods(self.methods))
        check_fraction(self.drop_fraction, "drop_fraction")
        if self.drop_fraction >= 1.0:
            raise ConfigError(
                "drop_fraction must be in [0, 1): dropping everything leaves nothing to train on"
            )
        v.flag("consensus", self.consensus)
        v.choice("decide", self.decide, DECISIONS)
        check_fraction(self.min_disagreement, "min_disagreement")
        check_fraction(self.max_share, "max_share")
        for name in ("epochs", "k", "components", "batch_size"):
            v.whole(name, getattr(self, name), 1)
        v.number("lr", self.lr, above=0)
        v.whole("seed", self.seed)
        v.device(self.device)

    @property
    def needs_model(self) -> bool:
        return "loss" in self.methods or "clustering" in self.methods


@dataclass(frozen=True)
class ClusterVerdict:
    """One class's 2-means split: the two cluster sizes (0 = the larger), the share of each that
    fails the k-NN label check, the share of those failing samples the reference model fits
    (predicts as the label; of the whole cluster without a k-NN check), which cluster was
    judged poison (-1: none) and whether it is dropped ``whole`` (a learnt shortcut: a
    backdoor) or sample by sample (mislabelled images)."""

    label: int
    sizes: tuple[int, int]
    disagreement: tuple[float, float]
    fitted: tuple[float, float]
    poison_cluster: int
    whole: bool


@dataclass
class SanitizeReport:
    """What the sanitiser flagged, and how that compares with the truth.

    ``flagged``: bool over the view's positions; ``keep``: the positions not flagged (pass to
    :meth:`PoisonedView.select`). ``found``: poisoned samples flagged; ``dropped_clean``: clean
    samples flagged; ``missed``: poisoned samples kept. ``precision`` = found / flagged,
    ``recall`` = found / poisoned (NaN when undefined). ``by_method``: the same per filter
    (keys of :func:`score_flags`). ``seconds``: wall time.
    """

    config: SanitizeConfig
    flagged: torch.Tensor
    keep: torch.Tensor
    found: int
    dropped_clean: int
    missed: int
    precision: float
    recall: float
    by_method: dict[str, dict[str, float]] = field(default_factory=dict)
    clusters: list[ClusterVerdict] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def n_flagged(self) -> int:
        return int(self.flagged.sum())

    def as_metrics(self, prefix: str = "sanitize_") -> dict[str, float]:
        values = {
            "flagged": float(self.n_flagged),
            "found": float(self.found),
            "dropped_clean": float(self.dropped_clean),
            "missed": float(self.missed),
            "precision": self.precision,
            "recall": self.recall,
        }
        return {prefix + k: v for k, v in values.items()}

    def summary(self) -> str:
        n_poisoned = self.found + self.missed
        return (
            f"The sanitiser ({'+'.join(self.config.methods)}) flagged {self.n_flagged} "
            f"samples: {self.found} of the {n_poisoned} poisoned ones and "
            f"{self.dropped_clean} clean ones."
        )


def score_flags(flagged: torch.Tensor, poisoned: torch.Tensor) -> dict[str, float]:
    """Found / dropped-clean / missed counts and precision / recall of bool ``flagged`` against
    bool ``poisoned`` (same length)."""
    found = int((flagged & poisoned).sum())
    n_flagged, n_poisoned = int(flagged.sum()), int(poisoned.sum())
    return {
        "flagged": float(n_flagged),
        "found": float(found),
        "dropped_clean": float(n_flagged - found),
        "missed": float(n_poisoned - found),
        "precision": found / n_flagged if n_flagged else math.nan,
        "recall": found / n_poisoned if n_poisoned else math.nan,
    }


# --------------------------------------------------------------------------- the brief model


def fit_brief(
    view: PoisonedView, config: SanitizeConfig, seed: int
) -> Generator[Event, None, Classifier]:
    """Train a fresh model for ``config.epochs`` on ``view`` (read batch by batch through
    :meth:`PoisonedView.batch`, never materialised); yields ``Progress`` per batch. Weights,
    data order and dropout masks all come from ``seed`` (dropout through the defence lab's
    :class:`PrivateRng`, outside of which the global generator is untouched). Returns the
    model in eval mode."""
    from advstudio.core.defence.common import PrivateRng
    from advstudio.core.defence.train import build_classifier

    if config.arch not in SEQUENTIAL:
        raise ConfigError(f"unknown architecture {config.arch!r}; allowed: {', '.join(SEQUENTIAL)}")
    device = pick_device(config.device)
    shape = tuple(int(s) for s in view.x.shape[1:])
    classes = max(10, int(view.y.max()) + 1, int(view.labels.max()) + 1 if len(view.labels) else 0)
    if config.arch in ARCHITECTURES:
        shape, classes = (1, 28, 28), 10
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        names = [str(i) for i in range(classes)]
        model = build_classifier(config.arch, shape, names).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    order_rng = torch.Generator().manual_seed(seed)
    dropout_rng = PrivateRng(seed + 1, device)
    n, b = len(view), config.batch_size
    per_epoch = math.ceil(n / b)
    total = config.epochs * per_epoch
    model.train()
    for epoch in range(config.epochs):
        order = torch.randperm(n, generator=order_rng)
        for i, start in enumerate(range(0, n, b)):
            xb, yb = view.batch(order[start : start + b])
            if len(xb) > 1 or n == 1:  # BatchNorm (digits-mlp) cannot train on one sample
                with dropout_rng:  # never yield inside this block
                    loss = F.cross_entropy(model(xb.to(device)), yb.to(device))
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
            yield Progress(epoch * per_epoch + i + 1, total, "training the reference model")
    return model.eval()


@torch.no_grad()
def model_scores(
    model: Classifier, view: PoisonedView, batch_size: int = 500
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per sample of ``view``: loss against its (poisoned) label, predicted class, and the
    penultimate activations, on the CPU. ``model`` must be a Sequential-net classifier."""
    device = model.device
    head = model.net[-1]
    losses, preds, feats = [], [], []
    for start in range(0, len(view), batch_size):
        xb, yb = view.batch(slice(start, start + batch_size))
        f = penultimate_features(model, xb.to(device))
        logits = head(f).float()
        losses.append(F.cross_entropy(logits, yb.to(device), reduction="none").cpu())
        preds.append(logits.argmax(1).cpu())
        feats.append(f.cpu())
    return torch.cat(losses), torch.cat(preds), torch.cat(feats)


# --------------------------------------------------------------------------- filters


def loss_flags(
    losses: torch.Tensor, preds: torch.Tensor, labels: torch.Tensor, drop_fraction: float
) -> torch.Tensor:
    """Bool flags: the highest-loss ``round(drop_fraction * N)`` samples, or with 0 the samples
    whose label differs from the prediction."""
    if drop_fraction <= 0:
        return preds != labels
    k = math.floor(drop_fraction * len(losses) + 0.5)
    flags = torch.zeros(len(losses), dtype=torch.bool)
    flags[losses.topk(k).indices] = True
    return flags


@torch.no_grad()
def knn_agreement(view: PoisonedView, k: int = 10, chunk: int = 500) -> torch.Tensor:
    """Per sample: the share of its ``k`` nearest other images (Euclidean, pixel space) that
    carry its label. Materialises the view once (the distances need every image); distances are
    computed ``chunk`` rows at a time (memory ``chunk * N`` floats)."""
    x, labels = view.materialize()
    x = x.flatten(1).float()
    n = len(x)
    k = min(k, n - 1)
    if k < 1:
        return torch.ones(n)
    out = torch.empty(n)
    for start in range(0, n, chunk):
        d = torch.cdist(x[start : start + chunk], x)
        rows = torch.arange(len(d))
        d[rows, rows + start] = math.inf  # not its own neighbour
        nn = d.topk(k, largest=False).indices
        out[start : start + chunk] = (
            (labels[nn] == labels[start : start + chunk, None]).float().mean(1)
        )
    return out


def two_means(
    z: torch.Tensor, generator: torch.Generator, restarts: int = 4, iters: int = 100
) -> torch.Tensor:
    """Cluster assignments (0/1) of the rows of ``z`` by k-means with k = 2 (k-means++ starts;
    the restart with the lowest within-cluster sum of squares wins). Cluster 0 is the larger."""
    n = len(z)
    best, best_inertia = torch.zeros(n, dtype=torch.long), math.inf
    for _ in range(restarts):
        first = z[torch.randint(n, (1,), generator=generator)]
        d2 = ((z - first) ** 2).sum(1)
        if float(d2.sum()) == 0.0:
            return best  # all points equal: one cluster
        second = z[torch.multinomial(d2, 1, generator=generator)]
        centres = torch.cat([first, second])
        assign = best
        for _ in range(iters):
            assign = torch.cdist(z, centres).argmin(1)
            new = torch.stack(
                [
                    z[assign == c].mean(0) if bool((assign == c).any()) else centres[c]
                    for c in range(2)
                ]
            )
            if torch.equal(new, centres):
                break
            centres = new
        inertia = float(((z - centres[assign]) ** 2).sum())
        if inertia < best_inertia:
            best, best_inertia = assign, inertia
    if 2 * int((best == 1).sum()) > n:  # make 1 the smaller (or equal) cluster
        best = 1 - best
    return best


def cluster_classes(
    features: torch.Tensor, labels: torch.Tensor, components: int, generator: torch.Generator
) -> torch.Tensor:
    """Per class of ``labels``: PCA of the centred ``features`` to ``components`` dimensions,
    then 2-means. Returns each sample's cluster (0 = the larger of its class, 1 = the smaller);
    classes of fewer than 4 samples stay in one cluster."""
    assign = torch.zeros(len(labels), dtype=torch.long)
    for c in labels.unique().tolist():
        idx = torch.nonzero(labels == c).reshape(-1)
        if len(idx) < 4:
            continue
        f = features[idx].double()
        f = f - f.mean(0)
        q = min(components, len(idx) - 1, f.shape[1])
        with torch.random.fork_rng(devices=[]):  # pca_lowrank draws from the global RNG
            torch.manual_seed(int(torch.randint(2**31, (1,), generator=generator)))
            _, _, v = torch.pca_lowrank(f, q=q, center=False)
        assign[idx] = two_means((f @ v).float(), generator)
    return assign


def judge_clusters(
    labels: torch.Tensor,
    assign: torch.Tensor,
    agreement: torch.Tensor | None,
    preds: torch.Tensor,
    config: SanitizeConfig,
) -> list[ClusterVerdict]:
    """Per class, which of its two clusters (if any) is poison, by ``config.decide``, and how
    it is dropped (see :func:`cluster_flags`)."""
    out = []
    for c in labels.unique().tolist():
        sizes, dis, fit = [], [], []
        for k in (0, 1):
            m = (labels == c) & (assign == k)
            sizes.append(int(m.sum()))
            odd = m if agreement is None else m & (agreement < 0.5)  # look like other classes
            fit.append(float((preds[odd] == c).float().mean()) if bool(odd.any()) else math.nan)
            dis.append(
                float((agreement[m] < 0.5).float().mean())
                if agreement is not None and bool(m.any())
                else math.nan
            )
        poison = -1
        if config.decide == "size":
            if sizes[1] and sizes[1] <= config.max_share * (sizes[0] + sizes[1]):
                poison = 1
        else:
            candidates = [k for k in (0, 1) if sizes[k] and dis[k] >= config.min_disagreement]
            if candidates:
                poison = max(candidates, key=lambda k: dis[k])
        whole = config.decide == "size" or (poison >= 0 and fit[poison] >= 0.5)
        out.append(
            ClusterVerdict(
                int(c), (sizes[0], sizes[1]), (dis[0], dis[1]), (fit[0], fit[1]), poison, whole
            )
        )
    return out


def cluster_flags(
    labels: torch.Tensor,
    assign: torch.Tensor,
    verdicts: list[ClusterVerdict],
    agreement: torch.Tensor | None,
    preds: torch.Tensor,
    consensus: bool = True,
) -> torch.Tensor:
    """Bool flags from the verdicts. A poison cluster whose odd samples (those k-NN sees as
    other classes) the reference model nevertheless *fits* (predicts the label for at least
    half of them) is a shortcut the model learnt, a backdoor: it is dropped whole (k-NN alone
    misses stamped images whose neighbours are stamped too), and so are the odd samples of the
    class's other cluster (stamped images 2-means put with the genuine ones). A poison cluster
    the model does not fit is mislabelled images among genuine ones (label flips land in the
    same clusters as the class's own digits): only its samples that k-NN and the model
    contradict (with ``consensus``; else either) are dropped."""
    flags = torch.zeros(len(labels), dtype=torch.bool)
    for verdict in verdicts:
        if verdict.poison_cluster < 0:
            continue
        members = (labels == verdict.label) & (assign == verdict.poison_cluster)
        if verdict.whole and agreement is not None:
            members |= (labels == verdict.label) & (agreement < 0.5)
        elif not verdict.whole:
            contradicted = preds != labels
            if agreement is not None:
                knn = agreement < 0.5
                contradicted = contradicted & knn if consensus else contradicted | knn
            members &= contradicted
        flags |= members
    return flags


# --------------------------------------------------------------------------- the job


def sanitize(
    view: PoisonedView, config: SanitizeConfig = SanitizeConfig()
) -> Generator[Event, None, SanitizeReport]:
    """Flag suspected poison in ``view`` (a job: yields ``Progress`` while training the
    reference model, one ``Log`` and one ``Metrics(0, {"sanitize_found", ...})`` at the end;
    returns the :class:`SanitizeReport`). The view is only read."""
    if len(view) < 2:
        raise ConfigError(f"the data set has {len(view)} samples; the sanitiser needs at least 2")
    t0 = time.perf_counter()
    labels = view.labels_all
    truth = view.poisoned_mask
    methods = config.methods
    losses = preds = feats = agreement = None
    if config.needs_model:
        reference = yield from fit_brief(view, config, config.seed)
        losses, preds, feats = model_scores(reference, view)
    if "knn" in methods or ("clustering" in methods and config.decide == "knn"):
        agreement = knn_agreement(view, config.k)
    by_method: dict[str, dict[str, float]] = {}
    per_sample = []
    if "loss" in methods:
        per_sample.append(loss_flags(losses, preds, labels, config.drop_fraction))
        by_method["loss"] = score_flags(per_sample[-1], truth)
    if "knn" in methods:
        per_sample.append(agreement < 0.5)
        by_method["knn"] = score_flags(per_sample[-1], truth)
    flagged = torch.zeros(len(view), dtype=torch.bool)
    if per_sample:
        flagged = per_sample[0].clone()
        for flags in per_sample[1:]:
            flagged = flagged & flags if config.consensus else flagged | flags
    verdicts: list[ClusterVerdict] = []
    if "clustering" in methods:
        assign = cluster_classes(
            feats, labels, config.components, torch.Generator().manual_seed(config.seed)
        )
        verdicts = judge_clusters(labels, assign, agreement, preds, config)
        flags = cluster_flags(labels, assign, verdicts, agreement, preds, config.consensus)
        by_method["clustering"] = score_flags(flags, truth)
        flagged |= flags
    s = score_flags(flagged, truth)
    report = SanitizeReport(
        config=config,
        flagged=flagged,
        keep=torch.nonzero(~flagged).reshape(-1),
        found=int(s["found"]),
        dropped_clean=int(s["dropped_clean"]),
        missed=int(s["missed"]),
        precision=s["precision"],
        recall=s["recall"],
        by_method=by_method,
        clusters=verdicts,
        seconds=time.perf_counter() - t0,
    )
    yield Log(report.summary())
    yield Metrics(0, report.as_metrics())
    return report
