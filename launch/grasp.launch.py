"""Launch grasp_node (node grasp_stability); optionally the demo source and the GUI live view.

    ros2 launch grasp_equi grasp.launch.py                       # node only, shipped weights
    ros2 launch grasp_equi grasp.launch.py demo:=true            # + demo_source
    ros2 launch grasp_equi grasp.launch.py model:=/path/model.safetensors device:=cuda gui:=true
    ros2 launch grasp_equi grasp.launch.py demo:=true rviz:=true  # + RViz with the installed rviz/grasp.rviz

When grasp_node exits, the whole launch ends. A process that exits with a non-zero code (a bad
parameter: 2, a missing checkpoint: 1, a crash) ends it too, and `ros2 launch` then exits with
code 1 so scripts see the failure. Ctrl-C (SIGINT) stops every process and exits 0.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, LogInfo, OpaqueFunction, Shutdown
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

ARGUMENTS = (
    ("model", "", "safetensors checkpoint; '' = the shipped weights"),
    ("device", "auto", "auto | cpu | cuda | cuda:N"),
    ("params_file", PathJoinSubstitution([FindPackageShare("grasp_equi"), "config", "grasp.yaml"]),
     "node parameters (YAML); model/device/allow_untrained above override it"),
    ("allow_untrained", "false", "run with a random untrained model if the shipped weights are missing"),
    ("demo", "false", "also start demo_source (sample objects as partial clouds + candidate grasps)"),
    ("gui", "false", "also start the GUI's live view (grasp_gui --ros)"),
    ("rviz", "false", "also open RViz 2 with the installed rviz/grasp.rviz (skipped, with a message, "
     "where rviz2 is not installed)"),
)


# Seconds a process gets to exit after SIGINT before launch escalates to SIGTERM (launch's
# default is 5). torch's interpreter teardown alone takes 1-2 s, the GUI's ~3.5 s, and more on
# a busy 2-core robot computer; `sigterm_timeout:=N` on the command line still overrides it.
STOP_TIMEOUT = LaunchConfiguration("sigterm_timeout", default="20")


class LaunchedProcessFailed(RuntimeError):
    """Raised from an on-exit handler: launch logs the message, shuts down and returns 1."""


def _fail_on_error(event, _context):
    """on_exit of every process: a non-zero exit code ends the launch with an error."""
    if event.returncode != 0:
        raise LaunchedProcessFailed(f"{event.action.name} exited with code {event.returncode}; "
                                    "stopping the launch (its log above says why)")


def _node_exited(event, context):
    """on_exit of grasp_node: nothing is left to serve, so the launch ends (with an error if it failed)."""
    _fail_on_error(event, context)
    return [Shutdown(reason="grasp_node exited")]


def _rviz(context):
    """RViz 2 on the package's config, or a message saying why not (it is not on PyPI)."""
    from ament_index_python.packages import PackageNotFoundError, get_package_prefix

    try:
        get_package_prefix("rviz2")
    except (PackageNotFoundError, OSError):  # OSError: no ament prefix at all
        return [LogInfo(msg="rviz:=true but rviz2 is not installed (it is not on PyPI; on a system ROS 2: "
                            "apt install ros-$ROS_DISTRO-rviz2): skipping RViz, everything else runs")]
    config = PathJoinSubstitution([FindPackageShare("grasp_equi"), "rviz", "grasp.rviz"])
    # no on_exit check: RViz is a viewer, and rviz2 is known to crash on exit now and then
    return [Node(package="rviz2", executable="rviz2", arguments=["-d", config], output="screen",
                 sigterm_timeout=STOP_TIMEOUT)]


def generate_launch_description() -> LaunchDescription:
    args = [DeclareLaunchArgument(name, default_value=default, description=text) for name, default, text in ARGUMENTS]
    node = Node(
        package="grasp_equi",
        executable="grasp_node",
        name="grasp_stability",
        output="screen",
        parameters=[
            LaunchConfiguration("params_file"),
            {
                "model_path": ParameterValue(LaunchConfiguration("model"), value_type=str),
                "device": ParameterValue(LaunchConfiguration("device"), value_type=str),
                "allow_untrained": ParameterValue(LaunchConfiguration("allow_untrained"), value_type=bool),
            },
        ],
        on_exit=_node_exited,
        sigterm_timeout=STOP_TIMEOUT,
    )
    demo = Node(package="grasp_equi", executable="demo_source", name="demo_source", output="screen",
                condition=IfCondition(LaunchConfiguration("demo")), on_exit=_fail_on_error,
                sigterm_timeout=STOP_TIMEOUT)
    # launch_ros always appends `--ros-args ...` to the command line; grasp_gui's main() drops
    # everything from `--ros-args` on, so only the GUI's own `--ros` flag reaches its parser.
    gui = Node(package="grasp_equi", executable="grasp_gui", output="screen", arguments=["--ros"],
               condition=IfCondition(LaunchConfiguration("gui")), on_exit=_fail_on_error,
               sigterm_timeout=STOP_TIMEOUT)
    rviz = OpaqueFunction(function=_rviz, condition=IfCondition(LaunchConfiguration("rviz")))
    return LaunchDescription([*args, node, demo, gui, rviz])
