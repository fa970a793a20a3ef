"""The Warp kernel of :mod:`.render`, compiled by Warp on first use (seconds) and kept in Warp's kernel cache.

It lives in a Warp module of its own name: ComfyUI may import the pack under a path-like package name, which
Warp would otherwise put into the cache's file names."""

import warp as wp


@wp.kernel(module="stable_pose_body_render", enable_backward=False)
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
