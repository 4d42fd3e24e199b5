// Host IIO sensors from a sysfs-like tree: which channels become sensors, their units and
// scales, and values read anew from the files at each refresh.
#include "vhost-user-scmi/iio_sensors.h"

#include <filesystem>
#include <fstream>

#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"
#include "vhost-user-scmi/scmi_spec.h"

namespace vhost::scmi {
namespace {

namespace fs = std::filesystem;

class IioSensorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::path(::testing::TempDir()) / "iio";
    fs::remove_all(root_);
    Write("iio:device0/name", "bme280");
    Write("iio:device0/in_temp_input", "23450");  // processed, milli-degrees
    Write("iio:device0/in_voltage0_raw", "100");
    Write("iio:device0/in_voltage0_scale", "2.5");
    Write("iio:device0/in_voltage0_supply_raw", "7");         // not a plain channel
    Write("iio:device0/in_humidityrelative_input", "40000");  // no SCMI driver takes it
    Write("iio:device1/name", "imu");
    Write("iio:device1/in_accel_x_raw", "-10");
    Write("iio:device1/in_accel_y_raw", "0");
    Write("iio:device1/in_accel_z_raw", "1000");
    Write("iio:device1/in_accel_scale", "0.009807");
    Write("iio:device1/in_accel_z_offset", "1");
    Write("iio:device1/in_anglvel_x_raw", "1");  // no y and z: skipped
    Write("not-a-device/name", "x");
  }
  void Write(const std::string& file, const std::string& text) {
    fs::create_directories((root_ / file).parent_path());
    std::ofstream(root_ / file) << text << "\n";
  }

  fs::path root_;
};

TEST_F(IioSensorsTest, ChannelsBecomeSensors) {
  ASSERT_OK_AND_ASSIGN(std::vector<Sensor> sensors, ScanIioSensors(root_.string()));
  ASSERT_EQ(sensors.size(), 3u);
  EXPECT_EQ(sensors[0].name, "bme280_temp");
  EXPECT_EQ(sensors[0].unit, kUnitCelsius);
  EXPECT_EQ(sensors[0].scale, -3);
  EXPECT_EQ(sensors[1].name, "bme280_voltage0");
  EXPECT_EQ(sensors[1].unit, kUnitVolts);
  EXPECT_EQ(sensors[2].name, "imu_accel");
  EXPECT_EQ(sensors[2].unit, kUnitMetersPerSecondSquared);
  EXPECT_EQ(sensors[2].scale, -6);
  EXPECT_EQ(sensors[2].axes,
            (std::vector<std::string>{"imu_accel_X", "imu_accel_Y", "imu_accel_Z"}));

  // In a platform, the values are read from the files, and again after they change.
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<ScmiPlatform> p, ScmiPlatform::Parse("reset r"));
  ASSERT_OK(p->AddSensors(std::move(sensors)));
  EXPECT_EQ(*p->Execute("get bme280_temp"), "sensor:bme280_temp=23450");
  EXPECT_EQ(*p->Execute("get bme280_voltage0"), "sensor:bme280_voltage0=250");
  // (raw + offset) * scale in micro-m/s^2.
  EXPECT_EQ(*p->Execute("get imu_accel"), "sensor:imu_accel=-98070,0,9816807");
  Write("iio:device0/in_temp_input", "30125");
  EXPECT_EQ(*p->Execute("get bme280_temp"), "sensor:bme280_temp=30125");
  {
    std::lock_guard<std::mutex> lock(p->mu);
    EXPECT_TRUE(p->sensors[0].changed);
  }
  // A name taken by the config is refused.
  ASSERT_OK_AND_ASSIGN(std::vector<Sensor> again, ScanIioSensors(root_.string()));
  EXPECT_FALSE(p->AddSensors(std::move(again)).ok());
}

TEST_F(IioSensorsTest, MissingRootIsAnError) {
  EXPECT_FALSE(ScanIioSensors((root_ / "nothing").string()).ok());
  EXPECT_FALSE(ScanHwmonSensors((root_ / "nothing").string()).ok());
}

TEST_F(IioSensorsTest, HwmonChannels) {
  Write("hwmon/hwmon0/name", "k10temp");
  Write("hwmon/hwmon0/temp1_input", "48250");
  Write("hwmon/hwmon0/temp1_label", "Tctl");
  Write("hwmon/hwmon0/temp1_crit", "100000");  // not an input
  Write("hwmon/hwmon1/name", "ina219");
  Write("hwmon/hwmon1/in1_input", "3312");
  Write("hwmon/hwmon1/curr1_input", "250");
  Write("hwmon/hwmon1/power1_input", "827000");
  Write("hwmon/hwmon1/fan1_input", "1200");  // no SCMI driver shows fans
  ASSERT_OK_AND_ASSIGN(std::vector<Sensor> sensors, ScanHwmonSensors((root_ / "hwmon").string()));
  ASSERT_EQ(sensors.size(), 4u);
  EXPECT_EQ(sensors[0].name, "k10temp_Tctl");
  EXPECT_EQ(sensors[0].unit, kUnitCelsius);
  EXPECT_EQ(sensors[1].name, "ina219_in1");
  EXPECT_EQ(sensors[1].unit, kUnitVolts);
  EXPECT_EQ(sensors[2].name, "ina219_curr1");
  EXPECT_EQ(sensors[3].name, "ina219_power1");
  EXPECT_EQ(sensors[3].unit, kUnitWatts);
  EXPECT_EQ(sensors[3].scale, -6);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<ScmiPlatform> p, ScmiPlatform::Parse(""));
  ASSERT_OK(p->AddSensors(std::move(sensors)));
  EXPECT_EQ(*p->Execute("get k10temp_Tctl"), "sensor:k10temp_Tctl=48250");
  EXPECT_EQ(*p->Execute("get ina219_power1"), "sensor:ina219_power1=827000");
  Write("hwmon/hwmon0/temp1_input", "51000");
  EXPECT_EQ(*p->Execute("get k10temp_Tctl"), "sensor:k10temp_Tctl=51000");
}

}  // namespace
}  // namespace vhost::scmi
