"""The benchmarks' official metric algorithms, re-derived in numpy/scipy.

| module | what |
| --- | --- |
| align | FreiHAND's align_w_scale / align_by_trafo, HO3D's align_sc_tr |
| pck | EvalUtil: per-keypoint EPE, PCK (<=), AUC by trapezoid |
| fscore | F-score with strict '<' and nearest neighbours (cKDTree) |
| freihand, ho3d, dexycb, rhd_stb | each benchmark's figures |
| temporal | MobRecon's Acc (acceleration of predicted joints) |
| conventions | HO3D joint order and OpenGL frame |
| plot | PCK curves as a PNG (PIL) |

Inputs are in the project's conventions (metres, OpenCV camera, FreiHAND order)
unless a function says otherwise; figures come out in the official units.
"""
from .align import align_by_trafo, align_sc_tr, align_w_scale, root_relative
from .conventions import (FREIHAND_TO_HO3D, HO3D_TO_FREIHAND, freihand_to_ho3d, ho3d_to_freihand,
                          opencv_to_opengl, opengl_to_opencv)
from .dexycb import evaluate_dexycb
from .freihand import evaluate_freihand
from .fscore import FSCORE_THRESHOLDS, fscore, nearest_distances
from .ho3d import evaluate_ho3d
from .pck import PCKMeasures, evaluate_keypoints, keypoint_distances, pck_measures
from .result import BenchmarkResult, Curve
from .rhd_stb import evaluate_rhd_stb
from .temporal import acceleration, acceleration_error, acceleration_figures, sequence_acceleration

__all__ = ["align_by_trafo", "align_sc_tr", "align_w_scale", "root_relative", "FREIHAND_TO_HO3D",
           "HO3D_TO_FREIHAND", "freihand_to_ho3d", "ho3d_to_freihand", "opencv_to_opengl", "opengl_to_opencv",
           "evaluate_dexycb", "evaluate_freihand", "FSCORE_THRESHOLDS", "fscore", "nearest_distances",
           "evaluate_ho3d", "PCKMeasures", "evaluate_keypoints", "keypoint_distances", "pck_measures",
           "BenchmarkResult", "Curve", "evaluate_rhd_stb", "acceleration", "acceleration_error",
           "acceleration_figures", "sequence_acceleration"]
