"""A faiss index of labelled support embeddings: the one-shot memory of the system.

Embeddings are L2-normalised, so an inner-product index ranks by cosine similarity. Class
labels live beside faiss's row ids, so a search answers with labels. Adding a labelled
example enrols its class at once, without retraining the network. How queries are labelled
from it (nearest support, nearest prototype) is :mod:`embedder.fewshot.classifiers`'s business; how it is
kept in a run is :mod:`embedder.runs.store`'s.

The index is flat (exact) by default; :class:`~embedder.index.spec.IndexSpec` picks an approximate one
(``ivf``, ``hnsw``, ``ivfpq``, ``sq8``) and an optional PCA (``index_dim``, renormalised after the
projection, so scores stay cosines). Those that learn something (quantisers, the PCA) are trained
with :meth:`SupportIndex.train`; an untrained one trains on the first vectors added to it.
:meth:`SupportIndex.vectors` is exact for flat, ivf and hnsw; for sq8, ivfpq or with a PCA it is
what the index can reconstruct (the decoded codes, mapped back through the PCA): approximate.

Every support has a stable id (:attr:`SupportIndex.ids`): ids are given in insertion order, never reused,
and they are faiss's own ids (``IDMap2`` around flat, hnsw and sq8; an IVF's native ids), so a search answers
with them and a removal (``remove_ids``) leaves every other support's id, and its origin, as it was. A run's
training supports take ids ``0 .. len(support_rows) - 1``; enrolled ones come after. Removal drops the codes
in place; only hnsw, whose graph faiss cannot edit, rebuilds its graph from the vectors it stores.

Changes cost what they change. The label and id arrays grow by doubling (an enrolment copies no existing row), and
the index keeps a journal of what changed since it was last serialised whole (:meth:`SupportIndex.to_bytes`): the
vectors added (with their labels and ids) and the classes removed. :meth:`SupportIndex.changes_to_bytes` writes that
journal alone, :meth:`SupportIndex.apply_changes` replays it onto the index it was made from, and a run keeps it in a
small file beside the index (:mod:`embedder.runs.index_files`), compacted into the index once it grows.

Every distance a run uses comes from one place, :meth:`SupportIndex.search` (optionally restricted to some
classes, with a faiss ``IDSelector``): prediction, calibration, the open-set evaluation and the episodes all call
it, for either method (the prototype method searches :meth:`SupportIndex.prototype_index`).
"""

from __future__ import annotations

import io
import json
import logging
import math
from dataclasses import asdict, replace

import faiss
import numpy as np

from embedder.errors import EmptyIndexError
from embedder.index.spec import IndexSpec

log = logging.getLogger(__name__)
MAX_TRAINING = 100_000  # vectors a default quantiser or PCA trains on at most (a seeded sample beyond that)
IVF_KINDS = ("ivf", "ivfpq")  # faiss ids are native to an IVF; the others get an IDMap2
FILE_VERSION = 2  # of the .npz: 2 added the stable ids
CHANGES_VERSION = 1  # of the journal's .npz (changes_to_bytes)
POINTS_PER_CENTROID = 39  # faiss's k-means rule: fewer training points per centroid and it warns
COARSE_CODES = POINTS_PER_CENTROID * 256  # a PQ sub-quantiser has 256 centroids


def _as_matrix(x: np.ndarray, dim: int) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] != dim:
        raise ValueError(f"expected embeddings of shape (n, {dim}), got {x.shape}")
    return x


def similarity_to_distance(similarity: np.ndarray) -> np.ndarray:
    """Euclidean distance between unit vectors from their cosine similarity: ``|a - b|^2 = 2 - 2 cos``."""
    return np.sqrt(np.clip(2.0 - 2.0 * similarity, 0.0, None))


def default_nlist(n: int) -> int:
    """Lists of an IVF index trained on ``n`` vectors: ~4 sqrt(n), with at least 39 training vectors per list
    (faiss's own rule of thumb for k-means)."""
    return max(1, min(int(4 * math.sqrt(n)), n // POINTS_PER_CENTROID))


def minimum_training(spec: IndexSpec, dim: int) -> int:
    """How many vectors ``spec`` needs to train on (0: nothing to train)."""
    needed = spec.index_dim or 0  # a PCA to D dimensions needs D vectors at least
    if spec.index in ("ivf", "ivfpq"):
        needed = max(needed, POINTS_PER_CENTROID * (spec.nlist or 1))
    if spec.index == "ivfpq":
        needed = max(needed, 256)  # 8-bit codes: 256 centroids per sub-quantiser
    return max(needed, 1) if spec.index == "sq8" else needed


def _factory_string(spec: IndexSpec, dim: int, nlist: int, id_map: bool = False) -> str:
    d = spec.stored_dim(dim)
    body = {
        "flat": "Flat",
        "ivf": f"IVF{nlist},Flat",
        "hnsw": f"HNSW{spec.hnsw_m},Flat",
        "ivfpq": f"IVF{nlist},PQ{spec.pq_bytes(dim)}",
        "sq8": "SQ8",
    }[spec.index]
    ids = "IDMap2," if id_map and spec.index not in IVF_KINDS else ""  # inside the PCA: selectors reach it
    return (f"PCA{d},L2norm," if spec.index_dim else "") + ids + body


def _under_pca(index: faiss.Index) -> faiss.Index:
    """The index a PCA feeds (the index itself without one)."""
    index = faiss.downcast_index(index)
    return faiss.downcast_index(index.index) if isinstance(index, faiss.IndexPreTransform) else index


def _search(
    index: faiss.Index, queries: np.ndarray, k: int, params: faiss.SearchParameters
) -> tuple[np.ndarray, np.ndarray]:
    """``index.search`` with parameters, through the SWIG call itself: once ``faiss.contrib.torch_utils`` is
    imported (PML's AccuracyCalculator does), ``search`` is a replacement that takes no parameters."""
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    scores, ids = np.empty((len(queries), k), np.float32), np.empty((len(queries), k), np.int64)
    index.search_c(len(queries), faiss.swig_ptr(queries), k, faiss.swig_ptr(scores), faiss.swig_ptr(ids), params)
    return scores, ids


def _ivf(index: faiss.Index) -> faiss.IndexIVF | None:
    try:
        return faiss.extract_index_ivf(index)
    except RuntimeError:  # not an IVF index
        return None


class SupportIndex:
    """Labelled support embeddings in a faiss inner-product index (flat unless ``spec`` says otherwise)."""

    def __init__(self, dim: int, spec: IndexSpec | None = None) -> None:
        self.dim = dim
        self.spec = spec or IndexSpec()
        self.spec.check(dim)
        self._labels = np.empty(0, dtype=np.int64)  # buffers that grow by doubling; rows [:_count] are held
        self._ids = np.empty(0, dtype=np.int64)  # row i's stable id, increasing (see the module doc)
        self._count = 0
        self.next_id = 0  # the id the next support gets: ids are never reused, a forgotten class's included
        self._journal: _Journal | None = _Journal(dim)  # changes since the last whole serialisation; None: unknown
        self._gpu: faiss.Index | None = None  # a GPU copy for searching, when placed on one (see place)
        self._device = "cpu"
        # An index whose size depends on its training data (nlist) is built when it is trained.
        needs_data = self.spec.index in ("ivf", "ivfpq") and self.spec.nlist is None
        self.index: faiss.Index | None = None if needs_data else self._build(self.spec.nlist or 1)

    def _build(self, nlist: int) -> faiss.Index:
        factory = _factory_string(self.spec, self.dim, nlist, id_map=True)
        index = faiss.index_factory(self.dim, factory, faiss.METRIC_INNER_PRODUCT)
        ivf = _ivf(index)
        if ivf is not None:
            ivf.set_direct_map_type(faiss.DirectMap.Hashtable)  # reconstruct() and remove_ids() by id
            ivf.cp.min_points_per_centroid = 1  # default_nlist keeps 39 per list; a given nlist is the user's call
        if self.spec.index == "ivfpq":
            ivfpq = faiss.downcast_index(ivf)
            ivfpq.do_polysemous_training = False  # the factory's default; only Hamming-filtered search uses it
            ivfpq.pq.cp.min_points_per_centroid = 1  # fewer than 39 x 256 vectors: coarser codes, no warning
        self._set_search_parameters(index)
        return index

    def _set_search_parameters(self, index: faiss.Index) -> None:
        ivf = _ivf(index)
        if ivf is not None:
            ivf.nprobe = min(self.spec.nprobe, ivf.nlist)
        if self.spec.index == "hnsw":
            faiss.ParameterSpace().set_index_parameter(index, "efSearch", self.spec.ef_search)

    def __len__(self) -> int:
        return 0 if self.index is None else int(self.index.ntotal)

    @property
    def labels(self) -> np.ndarray:
        """Each support's class label, row by row (a view: read it, never write into it)."""
        return self._labels[: self._count]

    @labels.setter
    def labels(self, value: np.ndarray) -> None:
        self._labels, self._count = np.array(value, dtype=np.int64).reshape(-1), len(value)

    @property
    def ids(self) -> np.ndarray:
        """Each support's stable id, row by row, increasing (a view, as :attr:`labels`)."""
        return self._ids[: self._count]

    @ids.setter
    def ids(self, value: np.ndarray) -> None:
        self._ids = np.array(value, dtype=np.int64).reshape(-1)

    def _append_rows(self, labels: np.ndarray, ids: np.ndarray) -> None:
        """Append rows, doubling the buffers when full: amortised O(1) a row, never a copy of all per change."""
        end = self._count + len(labels)
        if end > len(self._labels):
            capacity = max(end, 2 * len(self._labels), 16)
            for name in ("_labels", "_ids"):
                grown = np.empty(capacity, dtype=np.int64)
                grown[: self._count] = getattr(self, name)[: self._count]
                setattr(self, name, grown)
        self._labels[self._count : end], self._ids[self._count : end] = labels, ids
        self._count = end

    @property
    def classes(self) -> list[int]:
        return sorted(np.unique(self.labels).tolist())

    @property
    def is_trained(self) -> bool:
        return self.index is not None and bool(self.index.is_trained)

    def train(self, vectors: np.ndarray, seed: int = 0) -> None:
        """Train the quantiser and PCA on these vectors: a seeded sample of at most :data:`MAX_TRAINING`, or of
        the 39 per list that a larger ``nlist`` given in the spec needs.

        Retraining re-encodes the supports already held. A flat or hnsw index without PCA has nothing to learn.
        """
        vectors = _as_matrix(vectors, self.dim)
        most = max(MAX_TRAINING, minimum_training(self.spec, self.dim))  # --nlist 40000 trains on 1.56M
        if len(vectors) > most:
            vectors = vectors[np.random.default_rng(seed).choice(len(vectors), most, replace=False)]
        nlist = self.spec.nlist or default_nlist(len(vectors))
        needed = minimum_training(replace(self.spec, nlist=nlist), self.dim)
        if len(vectors) < needed:
            raise ValueError(f"a {self.describe()} index needs {needed} vectors to train on, got {len(vectors)}")
        if self.spec.index == "ivfpq" and len(vectors) < COARSE_CODES:
            log.warning(
                "ivfpq learns its codes from %d vectors, under the %d faiss asks for: they will be coarse; "
                "at this size a flat index is exact and fast",
                len(vectors),
                COARSE_CODES,
            )
        held = self.vectors()
        self.index = self._build(nlist)
        if not self.index.is_trained:
            self.index.train(vectors)
        self.index.add_with_ids(held, self.ids)
        self._gpu = None
        self._journal = None  # re-encoded: only a whole serialisation says what it holds now

    def add(self, embeddings: np.ndarray, labels: np.ndarray | list[int]) -> np.ndarray:
        """Enrol labelled examples; a label never seen before adds a new class. Returns their ids.

        An index not trained yet trains on these embeddings first (``ValueError`` if they are too few).
        """
        embeddings = _as_matrix(embeddings, self.dim)
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        if len(labels) != len(embeddings):
            raise ValueError(f"{len(embeddings)} embeddings but {len(labels)} labels")
        if not self.is_trained:
            self.train(embeddings)
        ids = np.arange(self.next_id, self.next_id + len(labels), dtype=np.int64)
        self._add_with_ids(embeddings, labels, ids)
        if self._journal is not None:
            self._journal.add(embeddings, labels, ids)
        return ids

    def _add_with_ids(self, embeddings: np.ndarray, labels: np.ndarray, ids: np.ndarray) -> None:
        self.index.add_with_ids(embeddings, ids)
        self._append_rows(labels, ids)
        self.next_id = max(self.next_id, int(ids[-1]) + 1) if len(ids) else self.next_id
        self._gpu = None

    def remove(self, label: int) -> int:
        """Forget a class: drop every support with this label. Returns how many were dropped.

        faiss drops their codes by id; the others keep their codes and ids. hnsw, whose graph faiss cannot
        edit, builds its graph again from the vectors it stores (exact: nothing is re-encoded).
        """
        gone = self.labels == label
        if not gone.any():
            return 0
        if self._journal is not None:
            self._journal.remove(label)
        if self.spec.index == "hnsw":
            self._rebuild_graph(~gone)
        else:  # an IVF's hashtable of ids takes an array; an IDMap2 asks "is it a member" per row: a hash set
            ids = np.ascontiguousarray(self.ids[gone])
            selector = faiss.IDSelectorArray(ids) if self.spec.index in IVF_KINDS else faiss.IDSelectorBatch(ids)
            self.index.remove_ids(selector)
        self.labels, self.ids = self.labels[~gone], self.ids[~gone]
        self._gpu = None
        return int(gone.sum())

    def _rebuild_graph(self, keep: np.ndarray) -> None:
        stored = _under_pca(self.index)  # the IDMap2 around the hnsw, holding vectors as the graph sees them
        vectors = np.asarray(faiss.downcast_index(stored.index).reconstruct_n(0, stored.ntotal))[keep]
        fresh = faiss.deserialize_index(faiss.serialize_index(self.index))  # same PCA, if any
        fresh.reset()
        inner = _under_pca(fresh)
        inner.add_with_ids(np.ascontiguousarray(vectors), np.ascontiguousarray(self.ids[keep]))
        fresh.ntotal = inner.ntotal  # added under the PCA: the outer index counts them too
        self._set_search_parameters(fresh)
        self.index = fresh

    def label_of(self, ids: np.ndarray) -> np.ndarray:
        """The labels of these support ids (ids are increasing, so a binary search finds each)."""
        ids = np.asarray(ids, dtype=np.int64)
        rows = np.clip(np.searchsorted(self.ids, ids), 0, max(len(self.ids) - 1, 0))
        if len(self.ids) == 0 or not (self.ids[rows] == ids).all():
            raise ValueError("ids that are not in the index")
        return self.labels[rows]

    def check_not_empty(self) -> None:
        if len(self) == 0:
            raise EmptyIndexError("the support index is empty: enrol labelled examples first")

    def search(
        self, queries: np.ndarray, k: int = 1, classes: list[int] | np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The labels and cosine similarities of each query's ``k`` nearest supports (of ``classes`` only, if
        given: what the answer would be were no other class enrolled)."""
        ids, scores = self.search_ids(queries, k, classes)
        return self.label_of(ids), scores

    def search_ids(
        self,
        queries: np.ndarray,
        k: int = 1,
        classes: list[int] | np.ndarray | None = None,
        among: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ids and cosine similarities of each query's ``k`` nearest supports; see :meth:`search`.
        ``among``: a boolean per row, to search those rows only (besides ``classes``).

        A restricted search runs on the CPU copy (faiss's GPU indexes take no selector).
        """
        self.check_not_empty()
        queries = _as_matrix(queries, self.dim)
        selector, candidates = None, len(self)
        if classes is not None or among is not None:
            chosen = np.ones(len(self), bool) if among is None else np.asarray(among, bool).copy()
            if classes is not None:
                chosen &= np.isin(self.labels, np.asarray(classes, dtype=np.int64))
            candidates = int(chosen.sum())
            if candidates == 0:
                raise EmptyIndexError("the support index holds no support of those classes")
            selector = self._selector(chosen)
        k = min(k, candidates)
        if selector is None:
            scores, ids = self._searcher().search(queries, k)
        else:
            scores, ids = _search(self.index, queries, k, self._parameters(selector, everything=False))
        short = (ids < 0).any(axis=1)  # the probed lists (or graph) held fewer than k of the candidates
        if short.any():
            params = self._parameters(selector, everything=True)
            scores[short], ids[short] = _search(self.index, queries[short], k, params)
        return ids, scores

    def _selector(self, chosen: np.ndarray) -> faiss.IDSelector:
        """The faiss selector of the rows ``chosen``: by its complement when that is the smaller set."""
        if chosen.sum() <= len(chosen) // 2:
            return faiss.IDSelectorBatch(np.ascontiguousarray(self.ids[chosen]))
        left_out = faiss.IDSelectorBatch(np.ascontiguousarray(self.ids[~chosen]))
        selector = faiss.IDSelectorNot(left_out)
        selector.referenced = left_out  # keep it alive as long as the selector
        return selector

    def _parameters(self, selector: faiss.IDSelector | None, everything: bool) -> faiss.SearchParameters:
        """faiss search parameters: the spec's (or, ``everything``, every list and node) and ``selector``."""
        ivf = _ivf(self.index)
        if ivf is not None:
            params = faiss.SearchParametersIVF(nprobe=ivf.nlist if everything else ivf.nprobe)
        elif self.spec.index == "hnsw":
            params = faiss.SearchParametersHNSW(efSearch=max(self.spec.ef_search, len(self) if everything else 0))
        else:
            params = faiss.SearchParameters()
        if selector is not None:
            params.sel = selector
        params.referenced = selector
        if self.spec.index_dim:
            outer = faiss.SearchParametersPreTransform(index_params=params)
            outer.referenced = params
            return outer
        return params

    def vectors(self) -> np.ndarray:
        """Every support embedding, in insertion order (row ``i`` has label ``labels[i]``, id ``ids[i]``); see the
        module doc."""
        if not len(self):
            return np.empty((0, self.dim), np.float32)
        # asarray: once faiss.contrib.torch_utils is imported (PML's AccuracyCalculator does), this is a tensor.
        return np.asarray(self.index.reconstruct_batch(np.ascontiguousarray(self.ids)))

    def prototypes(self) -> tuple[np.ndarray, np.ndarray]:
        """Each class's mean support embedding, renormalised, with the class labels."""
        self.check_not_empty()
        vectors = self.vectors()
        classes = np.array(self.classes, dtype=np.int64)
        means = np.stack([vectors[self.labels == c].mean(axis=0) for c in classes])
        means /= np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)
        return means.astype(np.float32), classes

    def prototype_index(self) -> SupportIndex:
        """An index of the same kind and training (PCA, quantiser) holding :meth:`prototypes`, one per class, each
        labelled with its class: searching it is the prototype method's decision, scored as the supports' is."""
        return self.holding(*self.prototypes())

    def holding(self, vectors: np.ndarray, labels: np.ndarray) -> SupportIndex:
        """An index of the same kind and training holding these few labelled vectors (a method's decision
        vectors: prototypes), every list of an IVF visited, so none is missed."""
        index = self.empty_copy()
        index.add(vectors, labels)
        ivf = _ivf(index.index) if index.index is not None else None
        if ivf is not None:  # a few vectors a class: visiting every list costs little
            ivf.nprobe = ivf.nlist
        return index

    # --- the journal: what changed since the index was last serialised whole ---

    @property
    def pending(self) -> int | None:
        """Vectors added since the last whole serialisation (None: the index was re-encoded, so only a whole
        serialisation can say what it holds)."""
        return None if self._journal is None else self._journal.added

    def changes_to_bytes(self) -> bytes:
        """The journal: the vectors added and classes removed since the last whole serialisation, as one .npz
        that :meth:`apply_changes` replays onto that serialisation. ``ValueError`` if the index was re-encoded."""
        if self._journal is None:
            raise ValueError("the index was re-encoded since it was serialised: serialise it whole (to_bytes)")
        return self._journal.to_bytes(self.next_id)

    def apply_changes(self, data: bytes, source: str = "index changes") -> None:
        """Replay :meth:`changes_to_bytes` output onto this index (as read from the serialisation it was made
        from): the classes removed, then the vectors added, with their ids. The journal goes on from there."""
        journal, next_id = _Journal.from_bytes(data, self.dim, source)
        if len(journal.ids) and len(self.ids) and journal.ids[0] <= self.ids[-1]:
            raise ValueError(f"{source} does not follow its index: its support ids are not newer than the index's")
        for label in journal.removed:
            self.remove(int(label))
        if len(journal.ids):
            self._add_with_ids(journal.vectors, journal.labels, journal.ids)
        self.next_id = max(self.next_id, next_id)
        self._journal = journal

    def mark_serialised(self) -> None:
        """The index was just saved whole (:meth:`to_bytes`): the journal starts empty."""
        self._journal = _Journal(self.dim)

    def empty_copy(self) -> SupportIndex:
        """An index of the same kind, with the same training, holding nothing."""
        copy = SupportIndex.from_bytes(self.to_bytes())
        if copy.index is not None:
            copy.index.reset()
        copy.labels, copy.ids, copy.next_id = np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64), 0
        return copy

    def describe(self) -> str:
        """The faiss index in words: ``"IVF256,PQ64"``, with its PCA if any (``"PCA128,L2norm,Flat"``)."""
        ivf = _ivf(self.index) if self.index is not None else None
        return _factory_string(self.spec, self.dim, ivf.nlist if ivf is not None else (self.spec.nlist or 0))

    # --- where searches run ---

    def place(self, device: str) -> str:
        """Search on ``device``: a GPU copy where faiss-gpu can make one, else the CPU. Returns where.

        Asked for a CUDA device without faiss-gpu (or for a type faiss cannot put on the GPU), it logs one
        line saying that the index stays on the CPU.
        """
        self._device, self._gpu = str(device), None
        if not self._device.startswith("cuda"):
            return "cpu"
        if not hasattr(faiss, "StandardGpuResources"):
            log.warning("faiss index on the CPU: faiss-gpu is not installed")
            return "cpu"
        return "cuda" if self._searcher() is not self.index else "cpu"

    def _searcher(self) -> faiss.Index:
        if self._gpu is None and self._device.startswith("cuda") and hasattr(faiss, "StandardGpuResources"):
            gpu = int(self._device.partition(":")[2] or 0)
            options = faiss.GpuClonerOptions()
            # PQ codes of 56 bytes or more (ivfpq's default is 64) fit a GPU only with half-precision lookup tables.
            options.useFloat16 = self.spec.index == "ivfpq"
            try:
                self._gpu = faiss.index_cpu_to_gpu(_gpu_resources(), gpu, self.index, options)
            except RuntimeError as exc:  # e.g. hnsw has no GPU version
                log.warning("faiss index on the CPU: %s", str(exc).strip().splitlines()[-1])
                self._device = "cpu"
        return self._gpu if self._gpu is not None else self.index

    # --- serialisation: one .npz holding faiss's own serialisation, the labels, ids and spec, no pickle ---

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        raw = faiss.serialize_index(self.index) if self.index is not None else np.empty(0, np.uint8)
        spec = np.array(json.dumps(asdict(self.spec)))
        np.savez(
            buffer, faiss_index=raw, labels=self.labels, ids=self.ids, next_id=np.int64(self.next_id),
            dim=np.int64(self.dim), spec=spec, version=np.int64(FILE_VERSION),
        )  # fmt: skip
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "index") -> SupportIndex:
        """Read :meth:`to_bytes` output; ``ValueError`` naming ``source`` if it is not one."""
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
                dim = int(arrays["dim"])
                if "ids" not in arrays:
                    raise ValueError(f"{source} was written by a tripletshot before stable ids: train the run again")
                raw, labels = arrays["faiss_index"], arrays["labels"].astype(np.int64)
                ids, next_id = arrays["ids"].astype(np.int64), int(arrays["next_id"])
                spec = IndexSpec(**json.loads(str(arrays["spec"])))
            index = faiss.deserialize_index(np.ascontiguousarray(raw, dtype=np.uint8)) if len(raw) else None
        except ValueError as exc:
            if "before stable ids" in str(exc):
                raise
            raise ValueError(f"{source} is damaged or not a tripletshot index ({type(exc).__name__})") from None
        except Exception as exc:
            raise ValueError(f"{source} is damaged or not a tripletshot index ({type(exc).__name__})") from None
        ntotal = 0 if index is None else index.ntotal
        if (index is not None and index.d != dim) or not ntotal == len(labels) == len(ids):
            raise ValueError(f"{source} is inconsistent: {ntotal} vectors of dim {dim}, {len(labels)} labels")
        if len(ids) and (np.any(np.diff(ids) <= 0) or ids[-1] >= next_id):
            raise ValueError(f"{source} is inconsistent: its support ids are not increasing")
        result = cls(dim, spec)
        result.index, result.labels, result.ids, result.next_id = index, labels, ids, next_id  # journal: empty
        if index is not None:
            result._set_search_parameters(index)
        return result


class _Journal:
    """What changed in an index since its last whole serialisation: the vectors added (as given to ``add``, with
    their labels and ids) and the classes removed. A removal drops the journal's own vectors of that class, so a
    replay removes those classes from the serialised index, then adds the vectors: the same supports, same ids."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.chunks: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (vectors, labels, ids) per add
        self.removed: list[int] = []

    @property
    def added(self) -> int:
        return sum(len(labels) for _, labels, _ in self.chunks)

    def add(self, vectors: np.ndarray, labels: np.ndarray, ids: np.ndarray) -> None:
        self.chunks.append((vectors.copy(), labels.copy(), ids.copy()))

    def remove(self, label: int) -> None:
        self.chunks = [
            (v[keep], lab[keep], i[keep]) for v, lab, i in self.chunks for keep in [lab != label] if keep.any()
        ]
        if label not in self.removed:
            self.removed.append(label)

    @property
    def vectors(self) -> np.ndarray:
        return np.concatenate([v for v, _, _ in self.chunks]) if self.chunks else np.empty((0, self.dim), np.float32)

    @property
    def labels(self) -> np.ndarray:
        return np.concatenate([lab for _, lab, _ in self.chunks]) if self.chunks else np.empty(0, np.int64)

    @property
    def ids(self) -> np.ndarray:
        return np.concatenate([i for _, _, i in self.chunks]) if self.chunks else np.empty(0, np.int64)

    def to_bytes(self, next_id: int) -> bytes:
        buffer = io.BytesIO()
        np.savez(
            buffer, vectors=self.vectors, labels=self.labels, ids=self.ids, removed=np.array(self.removed, np.int64),
            next_id=np.int64(next_id), dim=np.int64(self.dim), version=np.int64(CHANGES_VERSION),
        )  # fmt: skip
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, dim: int, source: str) -> tuple[_Journal, int]:
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
                vectors, labels = arrays["vectors"].astype(np.float32), arrays["labels"].astype(np.int64)
                ids, removed = arrays["ids"].astype(np.int64), arrays["removed"].astype(np.int64)
                next_id, stored_dim = int(arrays["next_id"]), int(arrays["dim"])
        except Exception as exc:
            raise ValueError(f"{source} is damaged or not a tripletshot index journal ({type(exc).__name__})") from None
        if stored_dim != dim or vectors.shape != (len(labels), dim) or len(ids) != len(labels):
            raise ValueError(f"{source} is inconsistent: {vectors.shape} vectors, {len(labels)} labels, dim {dim}")
        if len(ids) and (np.any(np.diff(ids) <= 0) or ids[-1] >= next_id):
            raise ValueError(f"{source} is inconsistent: its support ids are not increasing")
        journal = cls(dim)
        if len(ids):
            journal.chunks.append((np.ascontiguousarray(vectors), labels, ids))
        journal.removed = removed.tolist()
        return journal, next_id


_RESOURCES: list = []


def _gpu_resources() -> faiss.StandardGpuResources:
    """One set of faiss GPU resources per process (its scratch memory), made on first use."""
    if not _RESOURCES:
        _RESOURCES.append(faiss.StandardGpuResources())
    return _RESOURCES[0]
