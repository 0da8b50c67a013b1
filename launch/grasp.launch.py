"""Launch grasp_node (node grasp_stability); optionally the demo source and the GUI live view.

    ros2 launch grasp_equi grasp.launch.py                       # node only, shipped weights
    ros2 launch grasp_equi grasp.launch.py demo:=true            # + demo_source (what `make run` does)
    ros2 launch grasp_equi grasp.launch.py model:=/path/model.safetensors device:=cuda gui:=true
    ros2 launch grasp_equi grasp.launch.py demo:=true rviz:=true  # + RViz with the installed rviz/grasp.rviz
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, LogInfo, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

ARGUMENTS = (
    ("model", "", "safetensors checkpoint; '' = the shipped weights"),
    ("device", "auto", "auto | cpu | cuda | cuda:N"),
    ("params_file", PathJoinSubstitution([FindPackageShare("grasp_equi"), "config", "grasp.yaml"]),
     "node parameters (YAML); model/device above override it"),
    ("allow_untrained", "false", "run with a random untrained model if the shipped weights are missing"),
    ("demo", "false", "also start demo_source (sample objects as partial clouds + candidate grasps)"),
    ("gui", "false", "also start the GUI's live view (grasp_gui --ros)"),
    ("rviz", "false", "also open RViz 2 with the installed rviz/grasp.rviz (skipped, with a message, "
     "where rviz2 is not installed)"),
)


def _rviz(context):
    """RViz 2 on the package's config, or a message saying why not (it is not on PyPI)."""
    from ament_index_python.packages import PackageNotFoundError, get_package_prefix

    try:
        get_package_prefix("rviz2")
    except (PackageNotFoundError, OSError):  # OSError: no ament prefix at all
        return [LogInfo(msg="rviz:=true but rviz2 is not installed (it is not on PyPI; on a system ROS 2: "
                            "apt install ros-$ROS_DISTRO-rviz2): skipping RViz, everything else runs")]
    config = PathJoinSubstitution([FindPackageShare("grasp_equi"), "rviz", "grasp.rviz"])
    return [Node(package="rviz2", executable="rviz2", arguments=["-d", config], output="screen")]


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
    )
    demo = Node(package="grasp_equi", executable="demo_source", name="demo_source", output="screen",
                condition=IfCondition(LaunchConfiguration("demo")))
    # no name/parameters: launch_ros then passes no --ros-args, just the GUI's own flag
    gui = Node(package="grasp_equi", executable="grasp_gui", output="screen", arguments=["--ros"],
               condition=IfCondition(LaunchConfiguration("gui")))
    rviz = OpaqueFunction(function=_rviz, condition=IfCondition(LaunchConfiguration("rviz")))
    return LaunchDescription([*args, node, demo, gui, rviz])
