// Consumer progress and reset with DefaultMQAdminExt: a push consumer reads 10 messages,
// examineConsumeStats reports broker and consumer offsets; resetOffsetByTimestamp to a
// time before the first send moves the group back, the online consumer is told and
// reads the 10 messages again.
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.rocketmq.client.consumer.DefaultMQPushConsumer;
import org.apache.rocketmq.client.consumer.listener.ConsumeConcurrentlyStatus;
import org.apache.rocketmq.client.consumer.listener.MessageListenerConcurrently;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.common.admin.ConsumeStats;
import org.apache.rocketmq.common.admin.OffsetWrapper;
import org.apache.rocketmq.common.message.Message;
import org.apache.rocketmq.common.message.MessageQueue;
import org.apache.rocketmq.tools.admin.DefaultMQAdminExt;

public class RefProgress {
    // "queues/broker offsets/consumer offsets/diff" over the queues of topic (the group's
    // retry topic shows up too once it has an offset there).
    static String stats(DefaultMQAdminExt admin, String group, String topic) throws Exception {
        ConsumeStats cs = admin.examineConsumeStats(group);
        int queues = 0;
        long broker = 0;
        long consumer = 0;
        for (Map.Entry<MessageQueue, OffsetWrapper> e : cs.getOffsetTable().entrySet()) {
            if (!e.getKey().getTopic().equals(topic)) {
                continue;
            }
            queues++;
            broker += e.getValue().getBrokerOffset();
            consumer += e.getValue().getConsumerOffset();
        }
        return queues + "/" + broker + "/" + consumer + "/" + (broker - consumer);
    }

    // Waits until the group has committed all 10 messages of topic.
    static void settled(DefaultMQAdminExt admin, String group, String topic) throws Exception {
        RefUtil.await(() -> {
            try {
                return stats(admin, group, topic).endsWith("/10/0");
            } catch (Exception e) {
                return false;
            }
        }, 10000);
    }

    public static void main(String[] args) throws Exception {
        String ns = args[0];
        String topic = "JavaProgress";
        String group = "CG_JAVA_PROGRESS";
        DefaultMQAdminExt admin = RefUtil.admin(ns);
        RefUtil.createTopic(admin, topic, 4);
        DefaultMQProducer p = RefUtil.producer(ns, "PG_JAVA_PROGRESS");
        long before = System.currentTimeMillis() - 1000;
        Thread.sleep(1100);
        for (int i = 0; i < 10; i++) {
            p.send(new Message(topic, "P", ("p" + i).getBytes()));
        }
        AtomicInteger got = new AtomicInteger();
        DefaultMQPushConsumer c = RefUtil.pushConsumer(ns, group);
        c.setPersistConsumerOffsetInterval(500);
        c.subscribe(topic, "*");
        c.registerMessageListener((MessageListenerConcurrently) (msgs, ctx) -> {
            got.addAndGet(msgs.size());
            return ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
        });
        c.start();
        RefUtil.await(() -> got.get() >= 10, 20000);
        RefUtil.result("consumed", got.get());
        // queues/brokerOffset sum/consumerOffset sum/total diff
        settled(admin, group, topic);
        RefUtil.result("statsAfterConsume", stats(admin, group, topic));
        Map<MessageQueue, Long> reset = admin.resetOffsetByTimestamp(topic, group, before, true);
        long sum = 0;
        for (Long v : reset.values()) {
            sum += v;
        }
        RefUtil.result("resetQueues", reset.size());
        RefUtil.result("resetOffsetSum", sum);
        RefUtil.await(() -> got.get() >= 20, 20000);
        RefUtil.result("consumedAfterReset", got.get());
        settled(admin, group, topic);
        RefUtil.result("statsAfterReset", stats(admin, group, topic));
        c.shutdown();
        p.shutdown();
        admin.shutdown();
        System.exit(0);
    }
}
