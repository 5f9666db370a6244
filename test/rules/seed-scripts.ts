/** The seed's two Rhai example scripts, verbatim (docs/architecture.md "The seed"): they must run exactly as written. */

// The high-temperature rule, verbatim.
export const SEED_HIGH_TEMPERATURE_RULE = `// 示例：高温告警规则
// 变量 'msg' 和 'env' 由 Rust 注入

let temp = msg.values.temperature;

// 逻辑判断
if temp > 45.0 {
    print("Warning: High temperature detected!");
    
    // 返回 true 触发后续告警动作
    return true; 
} else {
    return false;
}`;

// The scene, verbatim.
export const SEED_SCENE = `// 示例：联动控制
// 当光照低于阈值，并且有人移动时

if msg.values.lux < 50 && msg.values.motion == 1 {
    // 调用 Rust 暴露的函数 'send_command'
    // 参数: (device_id, command, params)
    send_command("light_switch_01", "TurnOn", #{ brightness: 100 });
    
    // 记录日志
    log_info("Opened light due to dark environment.");
}`;
