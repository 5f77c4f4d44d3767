// Keeps a producer (group PG_JAVA_LIVE) and a push consumer (group CG_JAVA_LIVE, topic
// args[1]) connected until stdin closes, so mqadmin can list connections and ask the
// consumer for its running state. Prints "RESULT ready=true" once both are started, the
// consumer has read the one message sent and the broker has its offsets for every queue.
import org.apache.rocketmq.client.consumer.DefaultMQPushConsumer;
import org.apache.rocketmq.client.consumer.listener.ConsumeConcurrentlyStatus;
import org.apache.rocketmq.client.consumer.listener.MessageListenerConcurrently;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.common.admin.ConsumeStats;
import org.apache.rocketmq.common.message.Message;

public class RefLive {
    public static void main(String[] args) throws Exception {
        String ns = args[0];
        String topic = args[1];
        DefaultMQProducer p = RefUtil.producer(ns, "PG_JAVA_LIVE", "live-p");
        p.send(new Message(topic, "L", "live".getBytes()));
        DefaultMQPushConsumer c = new DefaultMQPushConsumer("CG_JAVA_LIVE");
        c.setNamesrvAddr(ns);
        c.setInstanceName("live-c");
        c.setPersistConsumerOffsetInterval(500);
        c.subscribe(topic, "*");
        c.registerMessageListener((MessageListenerConcurrently) (msgs, ctx) ->
            ConsumeConcurrentlyStatus.CONSUME_SUCCESS);
        c.start();
        // Ready once the broker has the group's offset for every queue of the topic and
        // the one message is consumed (the consumer commits every persist interval).
        org.apache.rocketmq.tools.admin.DefaultMQAdminExt admin = RefUtil.admin(ns);
        int queues = admin.examineTopicRouteInfo(topic).getQueueDatas().get(0).getWriteQueueNums();
        boolean ready = RefUtil.await(() -> {
            try {
                ConsumeStats cs = admin.examineConsumeStats("CG_JAVA_LIVE", topic);
                return cs.getOffsetTable().size() == queues && cs.computeTotalDiff() == 0;
            } catch (Exception e) {
                return false;
            }
        }, 60000);
        admin.shutdown();
        RefUtil.result("ready", ready);
        while (System.in.read() >= 0) {
            // wait for stdin to close
        }
        c.shutdown();
        p.shutdown();
        System.exit(0);
    }
}
