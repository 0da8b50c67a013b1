"""The ROS 2 adapter: the only part of grasp_equi that imports rclpy."""
