"""Self-supervised methods: each builds its model, names its views and wires a loss."""

from jax_ssl.methods._base import Method, ParamGroup, Phase
from jax_ssl.methods._common import batch_spec, example_batch, with_dataset_extras, zeros_batch
from jax_ssl.methods.byol import BYOL
from jax_ssl.methods.detcon import DetConB, DetConS
from jax_ssl.methods.simclr import SimCLR
from jax_ssl.methods.swav import SwAV
from jax_ssl.methods.rotnet import RotNet
from jax_ssl.methods.context import ContextPrediction
from jax_ssl.methods.jigsaw import Jigsaw
from jax_ssl.methods.multitask import MultiTask
from jax_ssl.methods.mae import MAE
from jax_ssl.methods.msn import MSN
from jax_ssl.methods.deepcluster import DeepCluster, DeepClusterV2
from jax_ssl.methods.sela import SeLA
from jax_ssl.methods.scan import SCAN, SCANSelfLabel
from jax_ssl.methods.smog import SMoG
from jax_ssl.methods.colorization import Colorization
from jax_ssl.methods.context_encoder import ContextEncoder
from jax_ssl.methods.dcgan import DCGAN
from jax_ssl.methods.exemplar import Exemplar
from jax_ssl.methods.damaged_jigsaw import DamagedJigsaw

# name -> class, for entry points that pick a method from a config string.
REGISTRY = {
    SimCLR.name: SimCLR,
    SwAV.name: SwAV,
    BYOL.name: BYOL,
    DetConS.name: DetConS,
    DetConB.name: DetConB,
    RotNet.name: RotNet,
    ContextPrediction.name: ContextPrediction,
    Jigsaw.name: Jigsaw,
    MultiTask.name: MultiTask,
    MAE.name: MAE,
    MSN.name: MSN,
    DeepCluster.name: DeepCluster,
    DeepClusterV2.name: DeepClusterV2,
    SeLA.name: SeLA,
    SCAN.name: SCAN,
    SCANSelfLabel.name: SCANSelfLabel,
    SMoG.name: SMoG,
    Colorization.name: Colorization,
    ContextEncoder.name: ContextEncoder,
    DCGAN.name: DCGAN,
    Exemplar.name: Exemplar,
    DamagedJigsaw.name: DamagedJigsaw,
}

__all__ = ["Method", "ParamGroup", "Phase", "SimCLR", "SwAV", "BYOL", "DetConS", "DetConB", "RotNet", "ContextPrediction", "Jigsaw", "MultiTask", "MAE", "MSN", "DeepCluster", "DeepClusterV2", "SeLA", "SCAN", "SCANSelfLabel", "SMoG", "Colorization", "ContextEncoder", "DCGAN", "Exemplar", "DamagedJigsaw",
           "REGISTRY", "batch_spec", "example_batch", "with_dataset_extras", "zeros_batch"]
