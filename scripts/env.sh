# shellcheck shell=bash
# Source me:  source scripts/env.sh
#
# Build and run environment of ollama_bridge. Afterwards the shell has rclpy, the ollama_bridge_msgs
# types in Python, the `ros2` CLI (when setup installed it) and can run the node binary.
#
# Two ROS bases:
#   * a robot with ROS 2 installed: `source /opt/ros/jazzy/setup.bash` first; that ROS is used as is.
#   * anything else: ROS 2 Jazzy from PyPI wheels in a venv made by scripts/setup.
# ROS_DOMAIN_ID is left as the user set it (tests set their own private domain).
#
# Knobs: OLLAMA_BRIDGE_BUILD_DIR (default <repo>/.build) holds the venv, the install prefix and cmake
# builds; CARGO_TARGET_DIR as usual.

OB_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export OB_REPO
export OB_BUILD_DIR="${OLLAMA_BRIDGE_BUILD_DIR:-$OB_REPO/.build}"
export ROS_INSTALL="$OB_BUILD_DIR/install"     # ollama_bridge_msgs + the ollama_bridge ament package
export ROS_DISTRO="${ROS_DISTRO:-jazzy}"       # r2r's build script requires it
# The project's venv: the ROS 2 wheels, or (with a system ROS) only the project's Python tools.
export VENV="$OB_BUILD_DIR/venv"

# A system ROS is in use when its setup.bash was sourced (it sets AMENT_PREFIX_PATH to /opt/ros/...).
if [[ -n "${OB_SYSTEM_ROS:-}" || ":${AMENT_PREFIX_PATH:-}:" == *":/opt/ros/"* ]]; then
  export OB_SYSTEM_ROS="${OB_SYSTEM_ROS:-${AMENT_PREFIX_PATH%%:*}}"
  export OB_PYTHON="$VENV/bin/python"
  [[ -x "$OB_PYTHON" ]] || OB_PYTHON=python3
  _ob_base="$OB_SYSTEM_ROS"
  _ob_libs=""
else
  export OB_PYTHON="$VENV/bin/python"
  _ob_base="$VENV"
  _ob_pyver="$("$OB_PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || echo 3.11)"
  # The wheels' libraries sit in venv/lib but their RPATH points elsewhere: list every vendored
  # ros_*.libs folder too (needed when building r2r and when running a non-Python binary).
  _ob_libs="$VENV/lib"
  for _d in "$VENV/lib/python$_ob_pyver/site-packages"/ros_*.libs; do
    [[ -d "$_d" ]] && _ob_libs="$_ob_libs:$_d"
  done
  export PATH="$VENV/bin:$PATH"
  export RMW_IMPLEMENTATION="${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"   # the only rmw shipped as wheels
  # A laptop demo stays on this machine unless the user opts into the network.
  export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
fi

case ":${AMENT_PREFIX_PATH:-}:" in *":$ROS_INSTALL:"*) ;; *)
  export AMENT_PREFIX_PATH="$ROS_INSTALL:$_ob_base${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}" ;;
esac
case ":${CMAKE_PREFIX_PATH:-}:" in *":$ROS_INSTALL:"*) ;; *)
  export CMAKE_PREFIX_PATH="$ROS_INSTALL:$_ob_base${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}" ;;
esac
case ":${LD_LIBRARY_PATH:-}:" in *":$ROS_INSTALL/lib:"*) ;; *)
  export LD_LIBRARY_PATH="$ROS_INSTALL/lib${_ob_libs:+:$_ob_libs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ;;
esac
_ob_site="$("$OB_PYTHON" -c 'import sys; print("lib/python%d.%d/site-packages" % sys.version_info[:2])' 2>/dev/null || echo lib/python3.11/site-packages)"
case ":${PYTHONPATH:-}:" in *":$ROS_INSTALL/$_ob_site:"*) ;; *)
  export PYTHONPATH="$ROS_INSTALL/$_ob_site:$OB_REPO${PYTHONPATH:+:$PYTHONPATH}" ;;
esac
case ":$PATH:" in *":$ROS_INSTALL/bin:"*) ;; *) export PATH="$ROS_INSTALL/bin:$PATH" ;; esac

# r2r's IDL_PACKAGE_FILTER is set in .cargo/config.toml (one place for every kind of build).
unset _ob_base _ob_libs _ob_pyver _ob_site _d
