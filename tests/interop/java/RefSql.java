// SQL92 subscription (MessageSelector.bySql) with the Java push consumer: 20 messages with
// user properties n=0..19 and color red/blue alternating; the consumer subscribes with
// "n >= 10 AND color = 'red'" and reports the bodies delivered.
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentSkipListSet;
import org.apache.rocketmq.client.consumer.DefaultMQPushConsumer;
import org.apache.rocketmq.client.consumer.MessageSelector;
import org.apache.rocketmq.client.consumer.listener.ConsumeConcurrentlyStatus;
import org.apache.rocketmq.client.consumer.listener.MessageListenerConcurrently;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.common.message.Message;
import org.apache.rocketmq.common.message.MessageExt;
import org.apache.rocketmq.tools.admin.DefaultMQAdminExt;

public class RefSql {
    public static void main(String[] args) throws Exception {
        String ns = args[0];
        String topic = "JavaSql";
        DefaultMQAdminExt admin = RefUtil.admin(ns);
        RefUtil.createTopic(admin, topic, 4);
        DefaultMQProducer p = RefUtil.producer(ns, "PG_JAVA_SQL");
        for (int i = 0; i < 20; i++) {
            Message m = new Message(topic, "T" + (i % 3), ("m" + i).getBytes());
            m.putUserProperty("n", Integer.toString(i));
            m.putUserProperty("color", i % 2 == 0 ? "red" : "blue");
            p.send(m);
        }
        Set<String> got = new ConcurrentSkipListSet<>();
        DefaultMQPushConsumer c = RefUtil.pushConsumer(ns, "CG_JAVA_SQL");
        c.subscribe(topic, MessageSelector.bySql("n >= 10 AND color = 'red'"));
        c.registerMessageListener((MessageListenerConcurrently) (msgs, ctx) -> {
            for (MessageExt m : msgs) {
                got.add(new String(m.getBody()));
            }
            return ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
        });
        c.start();
        RefUtil.await(() -> got.size() >= 5, 20000);
        Thread.sleep(2000);
        Set<String> sorted = new TreeSet<>((x, y) -> Integer.parseInt(x.substring(1)) - Integer.parseInt(y.substring(1)));
        sorted.addAll(got);
        RefUtil.result("delivered", String.join(",", sorted));
        c.shutdown();
        p.shutdown();
        admin.shutdown();
        System.exit(0);
    }
}
