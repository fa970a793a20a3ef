"""The Warp kernel of :mod:`.render` (compiled by Warp on first use and cached in Warp's kernel cache)."""

import warp as wp


@wp.kernel
def cast_rays(
    mesh: wp.uint64,
    fx: float,
    fy: float,
    cx: float,
    cy: float,
    width: int,
    depth: wp.array(dtype=float),
    face: wp.array(dtype=int),
):
    """One ray per pixel centre from the camera at the origin (OpenCV axes): depth along z of the first hit."""
    tid = wp.tid()
    x = float(tid % width) + 0.5
    y = float(tid // width) + 0.5
    direction = wp.normalize(wp.vec3((x - cx) / fx, (y - cy) / fy, 1.0))
    query = wp.mesh_query_ray(mesh, wp.vec3(0.0, 0.0, 0.0), direction, 1.0e6)
    if query.result:
        depth[tid] = query.t * direction[2]
        face[tid] = query.face
