// SPDX-License-Identifier: GPL-2.0
/*
 * A test consumer of one clock, for the SCMI guest tests: a device-tree node
 *   compatible = "vhost-user-test,clock-consumer"; clocks = <&provider ID>;
 * gets sysfs files `rate` (read: clk_get_rate; write: clk_set_rate) and `enabled` (write 1 or 0:
 * clk_prepare_enable or clk_disable_unprepare), so a guest script can drive a clock from user
 * space. Linux has no such consumer, and its clk debugfs files are read-only.
 */
#include <linux/clk.h>
#include <linux/device.h>
#include <linux/mod_devicetable.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/platform_device.h>

struct clock_consumer {
	struct clk *clk;
	struct mutex lock; /* guards enabled */
	bool enabled;
};

static ssize_t rate_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	struct clock_consumer *consumer = dev_get_drvdata(dev);

	return sysfs_emit(buf, "%lu\n", clk_get_rate(consumer->clk));
}

static ssize_t rate_store(struct device *dev, struct device_attribute *attr, const char *buf,
			  size_t count)
{
	struct clock_consumer *consumer = dev_get_drvdata(dev);
	unsigned long rate;
	int ret;

	ret = kstrtoul(buf, 0, &rate);
	if (ret)
		return ret;
	ret = clk_set_rate(consumer->clk, rate);
	return ret ? ret : count;
}
static DEVICE_ATTR_RW(rate);

static ssize_t enabled_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	struct clock_consumer *consumer = dev_get_drvdata(dev);

	return sysfs_emit(buf, "%d\n", consumer->enabled);
}

static ssize_t enabled_store(struct device *dev, struct device_attribute *attr,
			     const char *buf, size_t count)
{
	struct clock_consumer *consumer = dev_get_drvdata(dev);
	bool enable;
	int ret;

	ret = kstrtobool(buf, &enable);
	if (ret)
		return ret;
	mutex_lock(&consumer->lock);
	if (enable && !consumer->enabled)
		ret = clk_prepare_enable(consumer->clk);
	else if (!enable && consumer->enabled)
		clk_disable_unprepare(consumer->clk);
	if (!ret)
		consumer->enabled = enable;
	mutex_unlock(&consumer->lock);
	return ret ? ret : count;
}
static DEVICE_ATTR_RW(enabled);

static struct attribute *clock_consumer_attrs[] = {
	&dev_attr_rate.attr,
	&dev_attr_enabled.attr,
	NULL,
};
ATTRIBUTE_GROUPS(clock_consumer);

static int clock_consumer_probe(struct platform_device *pdev)
{
	struct clock_consumer *consumer;

	consumer = devm_kzalloc(&pdev->dev, sizeof(*consumer), GFP_KERNEL);
	if (!consumer)
		return -ENOMEM;
	consumer->clk = devm_clk_get(&pdev->dev, NULL);
	if (IS_ERR(consumer->clk))
		return dev_err_probe(&pdev->dev, PTR_ERR(consumer->clk), "no clock\n");
	mutex_init(&consumer->lock);
	platform_set_drvdata(pdev, consumer);
	return 0;
}

static void clock_consumer_remove(struct platform_device *pdev)
{
	struct clock_consumer *consumer = platform_get_drvdata(pdev);

	if (consumer->enabled)
		clk_disable_unprepare(consumer->clk);
}

static const struct of_device_id clock_consumer_of_match[] = {
	{ .compatible = "vhost-user-test,clock-consumer" },
	{}
};
MODULE_DEVICE_TABLE(of, clock_consumer_of_match);

static struct platform_driver clock_consumer_driver = {
	.probe = clock_consumer_probe,
	.remove = clock_consumer_remove,
	.driver = {
		.name = "scmi-clock-consumer",
		.of_match_table = clock_consumer_of_match,
		.dev_groups = clock_consumer_groups,
	},
};
module_platform_driver(clock_consumer_driver);

MODULE_DESCRIPTION("A clock consumer with sysfs files, for guest tests");
MODULE_LICENSE("GPL");
