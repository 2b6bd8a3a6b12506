import numpy as np
import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """A 32x32 synthetic category with all three modalities and every defect type."""
    from mmad_models.data.synthetic import write_dataset

    root = tmp_path_factory.mktemp("ds")
    write_dataset(root, "slab", size=(32, 32), n_train=6, n_validation=3, n_test_good=3, n_test_per_defect=2, seed=1)
    return root


@pytest.fixture
def rng():
    return np.random.default_rng(0)
