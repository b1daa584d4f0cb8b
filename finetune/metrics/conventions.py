"""Joint orders and camera conventions of the benchmarks' own tools.

The project works in FreiHAND keypoint order (0 wrist; 1-4 thumb CMC, MCP, IP,
tip; 5-8 index MCP, PIP, DIP, tip; 9-12 middle; 13-16 ring; 17-20 little) and
the OpenCV camera frame (x right, y down, z forward), in metres.

HO3D (v2 and v3) stores and evaluates its 21 joints in *MANO order with the
fingertips appended* (the order of HO3D's `handJoints3D` and of its challenge
ground truth):

| HO3D index | joint | FreiHAND index |
| --- | --- | --- |
| 0 | wrist | 0 |
| 1, 2, 3 | index MCP, PIP, DIP | 5, 6, 7 |
| 4, 5, 6 | middle MCP, PIP, DIP | 9, 10, 11 |
| 7, 8, 9 | little MCP, PIP, DIP | 17, 18, 19 |
| 10, 11, 12 | ring MCP, PIP, DIP | 13, 14, 15 |
| 13, 14, 15 | thumb CMC, MCP, IP | 1, 2, 3 |
| 16, 17, 18, 19, 20 | tips: thumb, index, middle, ring, little | 4, 8, 12, 16, 20 |

HO3D's own scripts reorder with `jointsMapManoToSimple` =
`[0,13,14,15,16,1,2,3,17,4,5,6,18,10,11,12,19,7,8,9,20]` (FreiHAND = HO3D[map]);
it is the MANO+tips -> FreiHAND map of the project's conventions.
HO3D's challenge expects the **OpenGL** camera frame (x right, y up, z backward:
the hand has negative z), i.e. y and z of OpenCV negated.

Dex-YCB's `joint_3d` (its `_MANO_JOINTS` list: wrist, thumb_mcp..tip, index,
middle, ring, little) is already in FreiHAND order; RHD and STB are reordered to
it by their loaders.
"""
from __future__ import annotations

import numpy as np

# FreiHAND-order keypoint k is HO3D-order keypoint HO3D_TO_FREIHAND[k]
HO3D_TO_FREIHAND = np.array([0, 13, 14, 15, 16, 1, 2, 3, 17, 4, 5, 6, 18, 10, 11, 12, 19, 7, 8, 9, 20])
# and HO3D-order keypoint h is FreiHAND-order keypoint FREIHAND_TO_HO3D[h]
FREIHAND_TO_HO3D = np.argsort(HO3D_TO_FREIHAND)

# OpenCV <-> OpenGL: negate y and z (the map is its own inverse)
OPENCV_TO_OPENGL = np.diag([1.0, -1.0, -1.0])

JOINT_NAMES = ["wrist",
               "thumb_cmc", "thumb_mcp", "thumb_ip", "thumb_tip",
               "index_mcp", "index_pip", "index_dip", "index_tip",
               "middle_mcp", "middle_pip", "middle_dip", "middle_tip",
               "ring_mcp", "ring_pip", "ring_dip", "ring_tip",
               "little_mcp", "little_pip", "little_dip", "little_tip"]


def freihand_to_ho3d(xyz: np.ndarray) -> np.ndarray:
    """(..., 21, D) FreiHAND order -> HO3D order."""
    return np.asarray(xyz)[..., FREIHAND_TO_HO3D, :]


def ho3d_to_freihand(xyz: np.ndarray) -> np.ndarray:
    """(..., 21, D) HO3D order -> FreiHAND order."""
    return np.asarray(xyz)[..., HO3D_TO_FREIHAND, :]


def opencv_to_opengl(points: np.ndarray) -> np.ndarray:
    """(..., 3) OpenCV camera frame -> OpenGL camera frame (and back: the flip is an involution)."""
    return np.asarray(points, dtype=np.float64) * np.array([1.0, -1.0, -1.0])


opengl_to_opencv = opencv_to_opengl
